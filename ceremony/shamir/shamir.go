// Package shamir splits a secret into n shares of which any m reconstruct
// it (Shamir, "How to share a secret", 1979), byte by byte over GF(2^8)
// with the AES polynomial x^8 + x^4 + x^3 + x + 1 (FIPS-197, section 4.2).
//
// Share i (1 ≤ i ≤ n) holds f_b(i) for each secret byte b, where f_b is a
// polynomial of degree m-1 with f_b(0) = b and the other coefficients from
// crypto/rand. Fewer than m shares say nothing about the secret.
package shamir

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
)

// Share is one share: its x coordinate (1..255) and one y byte per secret byte.
type Share struct {
	X byte
	Y []byte
}

// ErrShares is a bad set of shares or parameters.
var ErrShares = errors.New("invalid shares")

// mul multiplies in GF(2^8) modulo 0x11B, in constant time.
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= -(b & 1) & a
		carry := -(a >> 7)
		a = a<<1 ^ carry&0x1b
		b >>= 1
	}
	return p
}

// inv is a^254 = a^-1 for a ≠ 0 (Fermat), in constant time.
func inv(a byte) byte {
	r := a
	for range 6 {
		r = mul(r, r)
		r = mul(r, a)
	}
	return mul(r, r)
}

// Split makes n shares of secret, any m of which reconstruct it.
func Split(secret []byte, m, n int) ([]Share, error) {
	return split(rand.Reader, secret, m, n)
}

func split(random io.Reader, secret []byte, m, n int) ([]Share, error) {
	if m < 2 || n < m || n > 255 {
		return nil, fmt.Errorf("%w: need 2 ≤ threshold ≤ shares ≤ 255, got %d of %d", ErrShares, m, n)
	}
	if len(secret) == 0 {
		return nil, fmt.Errorf("%w: empty secret", ErrShares)
	}
	shares := make([]Share, n)
	for i := range shares {
		shares[i] = Share{X: byte(i + 1), Y: make([]byte, len(secret))}
	}
	coef := make([]byte, m) // coef[0] is the secret byte
	defer clear(coef)
	for b, s := range secret {
		coef[0] = s
		if _, err := io.ReadFull(random, coef[1:]); err != nil {
			return nil, err
		}
		for i := range shares {
			// Horner: f(x) = c0 + x(c1 + x(c2 + …)).
			x, y := shares[i].X, byte(0)
			for j := m - 1; j >= 0; j-- {
				y = mul(y, x) ^ coef[j]
			}
			shares[i].Y[b] = y
		}
	}
	return shares, nil
}

// Combine reconstructs the secret from m or more shares by Lagrange
// interpolation at 0. With fewer shares than the threshold it returns a
// wrong secret without knowing it: callers check the result (keyward
// compares its KCV with the one recorded at split time).
func Combine(shares []Share) ([]byte, error) {
	if len(shares) < 2 {
		return nil, fmt.Errorf("%w: need at least 2 shares, got %d", ErrShares, len(shares))
	}
	size := len(shares[0].Y)
	seen := map[byte]bool{}
	for _, s := range shares {
		if s.X == 0 || seen[s.X] {
			return nil, fmt.Errorf("%w: share index %d is zero or repeated", ErrShares, s.X)
		}
		if len(s.Y) != size {
			return nil, fmt.Errorf("%w: shares of different lengths", ErrShares)
		}
		seen[s.X] = true
	}
	secret := make([]byte, size)
	for i, si := range shares {
		// l_i(0) = Π_{j≠i} x_j / (x_j - x_i); subtraction is XOR.
		num, den := byte(1), byte(1)
		for j, sj := range shares {
			if i != j {
				num = mul(num, sj.X)
				den = mul(den, sj.X^si.X)
			}
		}
		l := mul(num, inv(den))
		for b := range secret {
			secret[b] ^= mul(l, si.Y[b])
		}
	}
	return secret, nil
}
