package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/pierrec/lz4/v4"
)

// LZ4 frames as Kafka carries them in a compressed record batch, written
// block by block straight from the batch's buffer: independent blocks of
// 64 KB (as the Java producer and librdkafka write them), no block or
// content checksum (the batch has its CRC-32C). Compressing each block in
// place saves the copy into a stream writer's block buffer and the content
// checksum that a frame writer computes; it also keeps the memory of a
// compression at one 64 KB block bound per partition.
const (
	lz4FLG       = 0x60 // version 01, block independence, no checksums, no content size
	lz4BD        = 0x40 // block maximum size 64 KB
	lz4HeaderSum = 0x82 // (xxh32(FLG, BD) >> 8) & 0xff
	lz4BlockSize = 64 << 10
	lz4Stored    = 0x80000000 // block size flag: the block is stored uncompressed
)

// appendLZ4Frame appends src as one LZ4 frame to dst.
func appendLZ4Frame(dst, src []byte, c *lz4.Compressor) ([]byte, error) {
	dst = binary.LittleEndian.AppendUint32(dst, lz4Magic)
	dst = append(dst, lz4FLG, lz4BD, lz4HeaderSum)
	bound := lz4.CompressBlockBound(lz4BlockSize)
	for len(src) > 0 {
		block := src[:min(len(src), lz4BlockSize)]
		src = src[len(block):]
		at := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		dst = grow(dst, bound)
		n, err := c.CompressBlock(block, dst[len(dst):len(dst)+bound])
		if err != nil {
			return nil, fmt.Errorf("lz4: %w", err)
		}
		if n == 0 || n >= len(block) { // incompressible: store it
			binary.LittleEndian.PutUint32(dst[at:], uint32(len(block))|lz4Stored)
			dst = append(dst, block...)
			continue
		}
		binary.LittleEndian.PutUint32(dst[at:], uint32(n))
		dst = dst[:len(dst)+n]
	}
	return binary.LittleEndian.AppendUint32(dst, 0), nil // end mark
}

// grow makes room for n more bytes after len(b).
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), 2*cap(b)+n)
	copy(nb, b)
	return nb
}
