package composecheck

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
)

// The Dockerfile's build image is exactly go.mod's Go version (golang
// images set GOTOOLCHAIN=local: an older image cannot build the module),
// and the README names that version and the Docker Compose version the
// compose files need.
func TestToolchainVersionsArePinnedAndDocumented(t *testing.T) {
	mod, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+\.\d+)$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go directive with a patch version")
	}
	goVersion := string(m[1])
	var from string
	for _, in := range dockerfile(t) {
		if word, rest, _ := strings.Cut(in, " "); strings.EqualFold(word, "FROM") && strings.HasSuffix(rest, " AS build") {
			from = strings.TrimSuffix(rest, " AS build")
		}
	}
	if !regexp.MustCompile(`^golang:` + regexp.QuoteMeta(goVersion) + `(-\S+)?(@sha256:[0-9a-f]{64})?$`).MatchString(from) {
		t.Errorf("build image %q, want golang:%s (go.mod's version)", from, goVersion)
	}
	readme := testutil.Docs(t, repo)
	if !strings.Contains(readme, "Go "+goVersion) {
		t.Errorf("the README does not name Go %s", goVersion)
	}
	// env_file entries with `required:` need Docker Compose 2.24.0.
	compose, err := os.ReadFile(filepath.Join(repo, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(compose), "required:") && !strings.Contains(readme, "Docker Compose 2.24.0 or newer") {
		t.Error("docker-compose.yml uses env_file `required:`, so the README must say Docker Compose 2.24.0 or newer")
	}
}
