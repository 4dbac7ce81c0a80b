package wire

import (
	"bytes"
	"crypto/rand"
	"io"
	"strings"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/segmentio/kafka-go/compress"
)

// TestLZ4FrameReadByStandardReaders: the frames decode with pierrec's
// frame reader (which checks the header checksum) and kafka-go's codec,
// for compressible, incompressible, empty and multi-block input, with the
// compressor reused.
func TestLZ4FrameReadByStandardReaders(t *testing.T) {
	random := make([]byte, 150<<10)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	inputs := map[string][]byte{
		"json, 5 blocks": []byte(strings.Repeat(`{"DeviceId":"0123456789abcdef0123456789abcdef01234567","x":"y"}`+"\n", 5000)),
		"incompressible": random,
		"one byte":       {'x'},
		"empty":          {},
		"exactly 64 KB":  bytes.Repeat([]byte("ab"), 32<<10),
	}
	var c lz4.Compressor
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			frame, err := appendLZ4Frame([]byte("prefix"), data, &c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(frame, []byte("prefix")) {
				t.Fatal("prefix overwritten")
			}
			frame = frame[len("prefix"):]
			for reader, r := range map[string]io.Reader{
				"pierrec":  lz4.NewReader(bytes.NewReader(frame)),
				"kafka-go": compress.Lz4.Codec().NewReader(bytes.NewReader(frame)),
			} {
				got, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("%s reader: %d bytes, err %v; want %d bytes back", reader, len(got), err, len(data))
				}
			}
		})
	}
}
