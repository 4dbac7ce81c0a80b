package producer

import (
	"io"
	"sync"

	"github.com/pierrec/lz4/v4"
	"github.com/segmentio/kafka-go/compress"
	kafkalz4 "github.com/segmentio/kafka-go/compress/lz4"
)

// kafka-go's lz4 codec writes LZ4 frames with pierrec/lz4's default 4 MB
// blocks: every produce request being compressed (one per partition at a
// time) then holds two 4 MB buffers, whatever the size of its batch. With
// six partitions compressing at once that is up to ~50 MB of buffers, so
// the peak RSS of a run depended on how often those compressions happened
// to overlap (75-95 MB, against 50 MB without compression). The Java
// producer and librdkafka write 64 KB blocks; so does this codec. The
// frames are ordinary LZ4 frames that every Kafka client reads; only the
// block size differs. Reading is kafka-go's own codec.
//
// kafka-go looks codecs up in its compress.Codecs table, so the codec is
// installed there once, when this package is initialised, before any
// goroutine can use the table.
func init() {
	compress.Codecs[compress.Lz4] = &lz4Codec{}
}

// lz4Codec implements kafka-go's compress.Codec with 64 KB LZ4 blocks.
type lz4Codec struct {
	writers sync.Pool // *lz4.Writer, options kept across Reset
}

func (c *lz4Codec) Code() int8   { return int8(compress.Lz4) }
func (c *lz4Codec) Name() string { return "lz4" }

func (c *lz4Codec) NewReader(r io.Reader) io.ReadCloser {
	return (&kafkalz4.Codec{}).NewReader(r)
}

func (c *lz4Codec) NewWriter(w io.Writer) io.WriteCloser {
	z, _ := c.writers.Get().(*lz4.Writer)
	if z != nil {
		z.Reset(w)
	} else {
		z = lz4.NewWriter(w)
		// Cannot fail on a new writer with a valid block size.
		_ = z.Apply(lz4.BlockSizeOption(lz4.Block64Kb))
	}
	return &lz4Writer{Writer: z, pool: &c.writers}
}

type lz4Writer struct {
	*lz4.Writer
	pool *sync.Pool
}

func (w *lz4Writer) Close() error {
	z := w.Writer
	if z == nil {
		return nil
	}
	w.Writer = nil
	err := z.Close()
	z.Reset(nil)
	w.pool.Put(z)
	return err
}
