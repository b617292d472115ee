package keystore

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/keyward/keyward/hsm"
)

// The byte formats are specified in docs/FORMAT.md; keep the two in step.
const (
	magic        = "KWE1"
	KindRecord   = 1 // one message: a stored record
	KindStream   = 2 // a file in 64 KiB chunks
	roleMaster   = 1
	HeaderSize   = 13
	StreamIDSize = 16 // random, after a stream's header: binds its chunks together
	ChunkSize    = 64 * 1024
	sealedOver   = hsm.NonceSize + hsm.TagSize // bytes sealing adds
)

// Header starts every ciphertext: format, kind, key role, key version, KCV.
type Header struct {
	Kind       byte
	KeyVersion int
	KCV        string // 6 upper-case hex digits
}

func (h Header) bytes() []byte {
	b := make([]byte, HeaderSize)
	copy(b, magic)
	b[4] = h.Kind
	b[5] = roleMaster
	binary.BigEndian.PutUint32(b[6:10], uint32(h.KeyVersion))
	hex.Decode(b[10:13], []byte(h.KCV))
	return b
}

// ParseHeader reads the header at the start of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize || string(b[:4]) != magic {
		return Header{}, fmt.Errorf("%w: it does not start with %q", ErrFormat, magic)
	}
	if b[5] != roleMaster {
		return Header{}, fmt.Errorf("%w: unknown key role %d", ErrFormat, b[5])
	}
	if b[4] != KindRecord && b[4] != KindStream {
		return Header{}, fmt.Errorf("%w: unknown kind %d", ErrFormat, b[4])
	}
	return Header{Kind: b[4], KeyVersion: int(binary.BigEndian.Uint32(b[6:10])), KCV: strings.ToUpper(hex.EncodeToString(b[10:13]))}, nil
}

// aead is what the device does with a key (*hsm.Key).
type aead interface {
	Seal(ctx context.Context, plaintext, aad []byte) ([]byte, error)
	Open(ctx context.Context, sealed, aad []byte) ([]byte, error)
}

// recordAAD binds a record to its header and its name (or context):
// header ‖ uint32 BE len(context) ‖ context.
func recordAAD(header []byte, context string) []byte {
	aad := make([]byte, 0, len(header)+4+len(context))
	aad = append(aad, header...)
	aad = binary.BigEndian.AppendUint32(aad, uint32(len(context)))
	return append(aad, context...)
}

// sealRecord is header ‖ nonce ‖ ciphertext ‖ tag.
func sealRecord(ctx context.Context, k aead, h Header, context string, plaintext []byte) ([]byte, error) {
	hb := h.bytes()
	sealed, err := k.Seal(ctx, plaintext, recordAAD(hb, context))
	if err != nil {
		return nil, err
	}
	return append(hb, sealed...), nil
}

func openRecord(ctx context.Context, k aead, blob []byte, context string) ([]byte, error) {
	return k.Open(ctx, blob[HeaderSize:], recordAAD(blob[:HeaderSize], context))
}

// chunkAAD: header ‖ stream id ‖ uint64 BE index ‖ final (0 or 1) ‖
// uint32 BE len(context) ‖ context. head is header ‖ stream id.
func chunkAAD(head []byte, index uint64, final bool, context string) []byte {
	aad := make([]byte, 0, len(head)+13+len(context))
	aad = append(aad, head...)
	aad = binary.BigEndian.AppendUint64(aad, index)
	f := byte(0)
	if final {
		f = 1
	}
	aad = append(aad, f)
	aad = binary.BigEndian.AppendUint32(aad, uint32(len(context)))
	return append(aad, context...)
}

// sealStream writes header and a random stream id, then r in ChunkSize
// pieces, each sealed with the stream id, its index and a final flag in the
// AAD, so truncation, reordering and splicing (even of chunks of another
// stream under the same key and context) fail. It returns the number of
// chunks (encryptions).
func sealStream(ctx context.Context, k aead, h Header, context string, r io.Reader, w io.Writer) (int, error) {
	hb := append(h.bytes(), make([]byte, StreamIDSize)...)
	if _, err := rand.Read(hb[HeaderSize:]); err != nil {
		return 0, err
	}
	if _, err := w.Write(hb); err != nil {
		return 0, err
	}
	br := bufio.NewReaderSize(r, ChunkSize+1)
	buf := make([]byte, ChunkSize)
	defer clear(buf)
	for i := uint64(0); ; i++ {
		n, err := io.ReadFull(br, buf)
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return int(i), err
		}
		final := err != nil
		if !final {
			if _, perr := br.Peek(1); perr == io.EOF {
				final = true
			} else if perr != nil {
				return int(i), perr
			}
		}
		sealed, serr := k.Seal(ctx, buf[:n], chunkAAD(hb, i, final, context))
		if serr != nil {
			return int(i), serr
		}
		if _, err := w.Write(sealed); err != nil {
			return int(i), err
		}
		if final {
			return int(i + 1), nil
		}
	}
}

// openStream reads a stream whose header and stream id (hb) were already
// read from r, and writes each chunk's plaintext to w only after
// the chunk authenticates. A stream that ends before its final chunk fails.
func openStream(ctx context.Context, k aead, hb []byte, context string, r io.Reader, w io.Writer) error {
	br := bufio.NewReaderSize(r, ChunkSize+sealedOver+1)
	buf := make([]byte, ChunkSize+sealedOver)
	for i := uint64(0); ; i++ {
		n, err := io.ReadFull(br, buf)
		if err == io.EOF {
			return fmt.Errorf("%w: the ciphertext is truncated: it ends before its final chunk", hsm.ErrAuthentication)
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			return err
		}
		final := err != nil
		if !final {
			if _, perr := br.Peek(1); perr == io.EOF {
				final = true
			}
		}
		if n < sealedOver {
			return fmt.Errorf("%w: chunk %d is shorter than a nonce and a tag", hsm.ErrAuthentication, i)
		}
		pt, err := k.Open(ctx, buf[:n], chunkAAD(hb, i, final, context))
		if err != nil {
			return fmt.Errorf("chunk %d: %w", i, err)
		}
		_, werr := w.Write(pt)
		clear(pt)
		if werr != nil {
			return werr
		}
		if final {
			return nil
		}
	}
}
