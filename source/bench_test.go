package source_test

import (
	"bytes"
	stdgzip "compress/gzip"
	"io"
	"sync"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"

	"github.com/tvm2kafka/tvm2kafka/internal/synth"
)

// benchPart is one synthetic part file (~1 KB realistic records), gzip
// compressed like the export's parts, and its decompressed size.
var benchPart = sync.OnceValues(func() ([]byte, int64) {
	opts := synth.Options{Devices: 20000, Parts: 1, Seed: 1}
	var buf bytes.Buffer
	if _, err := synth.WritePart(&buf, opts, synth.Plan(opts).Parts[0]); err != nil {
		panic(err)
	}
	zr, err := stdgzip.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		panic(err)
	}
	n, err := io.Copy(io.Discard, zr)
	if err != nil {
		panic(err)
	}
	return buf.Bytes(), n
})

// gunzipper decodes one gzip stream into io.Discard and returns its size.
type gunzipper func(src io.Reader, buf []byte) (int64, error)

func benchGunzip(b *testing.B, decode gunzipper) {
	part, size := benchPart()
	buf := make([]byte, 64<<10) // what schema.LineReader asks for per Read, about
	b.SetBytes(size)            // MB/s of decompressed output
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n, err := decode(bytes.NewReader(part), buf)
		if err != nil {
			b.Fatal(err)
		}
		if n != size {
			b.Fatalf("decoded %d bytes, want %d", n, size)
		}
	}
}

func copyBuf(r io.Reader, buf []byte) (int64, error) {
	return io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
}

// BenchmarkGunzip compares the decoder source.Blobs uses
// (github.com/klauspost/compress/gzip) with the standard library's on a
// synthetic part. The figure to compare with the pipeline is MB/s of
// decompressed bytes per core.
func BenchmarkGunzip(b *testing.B) {
	b.Run("klauspost", func(b *testing.B) {
		benchGunzip(b, func(src io.Reader, buf []byte) (int64, error) {
			zr, err := kgzip.NewReader(src)
			if err != nil {
				return 0, err
			}
			defer zr.Close()
			return copyBuf(zr, buf)
		})
	})
	b.Run("klauspost-reset", func(b *testing.B) {
		var zr kgzip.Reader
		benchGunzip(b, func(src io.Reader, buf []byte) (int64, error) {
			if err := zr.Reset(src); err != nil {
				return 0, err
			}
			return copyBuf(&zr, buf)
		})
	})
	b.Run("stdlib", func(b *testing.B) {
		benchGunzip(b, func(src io.Reader, buf []byte) (int64, error) {
			zr, err := stdgzip.NewReader(src)
			if err != nil {
				return 0, err
			}
			defer zr.Close()
			return copyBuf(zr, buf)
		})
	})
}
