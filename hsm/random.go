package hsm

import (
	"context"
	"io"

	"github.com/miekg/pkcs11"
)

// Random returns a reader of random bytes from the device (C_GenerateRandom).
func (t *Token) Random() io.Reader { return randomReader{t} }

type randomReader struct{ t *Token }

func (r randomReader) Read(p []byte) (int, error) {
	err := r.t.do(context.Background(), "random", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		b, err := r.t.st.mod.ctx.GenerateRandom(s, len(p))
		if err != nil {
			return call("C_GenerateRandom", err)
		}
		copy(p, b)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}
