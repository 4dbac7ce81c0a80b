package producer

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/segmentio/kafka-go/compress"
)

// TestLZ4CodecSmallBlocks: kafka-go compresses with the 64 KB block codec,
// its frames decode with a standard LZ4 frame reader and kafka-go's own,
// and pooled writers keep the block size.
func TestLZ4CodecSmallBlocks(t *testing.T) {
	codec := compress.Lz4.Codec()
	if _, ok := codec.(*lz4Codec); !ok {
		t.Fatalf("kafka-go's lz4 codec is %T, want *lz4Codec", codec)
	}
	data := []byte(strings.Repeat(`{"DeviceId":"0123456789abcdef0123456789abcdef01234567","x":"y"}`+"\n", 5000)) // > 64 KB
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 { // pooled writers are reused
				var buf bytes.Buffer
				w := codec.NewWriter(&buf)
				if _, err := w.Write(data); err != nil {
					t.Errorf("writer %d: %v", g, err)
					return
				}
				if err := w.Close(); err != nil {
					t.Errorf("writer %d close: %v", g, err)
					return
				}
				frame := buf.Bytes()
				// LZ4 frame: magic (4 bytes), FLG, BD; BD bits 4-6 = 4 means 64 KB.
				if len(frame) < 6 || frame[5]>>4&7 != 4 {
					t.Errorf("frame block size index %d, want 4 (64 KB)", frame[5]>>4&7)
					return
				}
				for name, r := range map[string]io.Reader{
					"pierrec":  lz4.NewReader(bytes.NewReader(frame)),
					"kafka-go": codec.NewReader(bytes.NewReader(frame)),
				} {
					got, err := io.ReadAll(r)
					if err != nil || !bytes.Equal(got, data) {
						t.Errorf("%s reader: %d bytes, err %v; want %d bytes back", name, len(got), err, len(data))
					}
				}
			}
		}()
	}
	wg.Wait()
}
