package streamsapp

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
)

// TestReadmeSnippetIsTheTestedCode: the README's Kafka Streams snippet is
// the code between the application's "README" markers, so the snippet is
// what the end-to-end tests run.
func TestReadmeSnippetIsTheTestedCode(t *testing.T) {
	java, err := os.ReadFile("src/main/java/tvm2kafka/streams/DeviceTableApp.java")
	if err != nil {
		t.Fatal(err)
	}
	readme := []byte(testutil.Docs(t, "../.."))
	m := regexp.MustCompile(`(?s)// README "Consuming": Kafka Streams — begin\n(.*?)\n\s*// README "Consuming": Kafka Streams — end`).FindSubmatch(java)
	if m == nil {
		t.Fatal("the application has no README markers")
	}
	code := normalize(string(m[1]))
	blocks := regexp.MustCompile("(?s)```java\n(.*?)```").FindAllSubmatch(readme, -1)
	for _, b := range blocks {
		if normalize(string(b[1])) == code {
			return
		}
	}
	t.Fatalf("no java block of README.md is the application's code:\n%s", m[1])
}

// normalize drops indentation and blank lines.
func normalize(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
