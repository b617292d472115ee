package shamir

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// FIPS-197 section 4.2 and 4.2.1 give these products in GF(2^8).
func TestFieldVectorsFromFIPS197(t *testing.T) {
	for _, v := range []struct{ a, b, p byte }{
		{0x57, 0x83, 0xc1},
		{0x57, 0x13, 0xfe},
		{0x57, 0x02, 0xae},
		{0x57, 0x04, 0x47},
		{0x57, 0x08, 0x8e},
		{0x57, 0x10, 0x07},
	} {
		if got := mul(v.a, v.b); got != v.p {
			t.Errorf("{%02x}•{%02x} = {%02x}, FIPS-197 says {%02x}", v.a, v.b, got, v.p)
		}
	}
	for a := 1; a < 256; a++ {
		if mul(byte(a), inv(byte(a))) != 1 {
			t.Fatalf("inverse of %02x is wrong", a)
		}
	}
}

// fixedRandom hands out the coefficients of a known polynomial.
type fixedRandom []byte

func (f *fixedRandom) Read(p []byte) (int, error) {
	n := copy(p, *f)
	*f = (*f)[n:]
	return n, nil
}

// A worked example (docs/CEREMONY.md): secret byte 0x42, threshold 2,
// f(x) = 0x42 + 0x57·x. Shares: f(1) = 0x42^0x57 = 0x15, f(2) = 0x42^0xae =
// 0xec, f(3) = 0x42^(0x57•3 = 0xf9) = 0xbb.
func TestWorkedExample(t *testing.T) {
	r := fixedRandom{0x57}
	shares, err := split(&r, []byte{0x42}, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x15, 0xec, 0xbb}
	for i, s := range shares {
		if s.X != byte(i+1) || s.Y[0] != want[i] {
			t.Errorf("share %d = (%d, %02x), want (%d, %02x)", i, s.X, s.Y[0], i+1, want[i])
		}
	}
	for _, pair := range [][2]int{{0, 1}, {0, 2}, {1, 2}, {2, 0}} {
		got, err := Combine([]Share{shares[pair[0]], shares[pair[1]]})
		if err != nil || got[0] != 0x42 {
			t.Errorf("combine %v = %x, %v", pair, got, err)
		}
	}
}

func TestAnyThresholdSubsetRecovers(t *testing.T) {
	secret := make([]byte, 32)
	rand.Read(secret)
	shares, err := Split(secret, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for a := 0; a < 5; a++ {
		for b := a + 1; b < 5; b++ {
			for c := b + 1; c < 5; c++ {
				got, err := Combine([]Share{shares[c], shares[a], shares[b]})
				if err != nil || !bytes.Equal(got, secret) {
					t.Fatalf("shares %d,%d,%d: %v", a, b, c, err)
				}
				n++
			}
		}
	}
	if n != 10 {
		t.Fatalf("tried %d subsets", n)
	}
	// Two shares of a 3-of-5 split give some other value.
	if got, _ := Combine(shares[:2]); bytes.Equal(got, secret) {
		t.Fatal("2 shares of a 3-of-5 split recovered the secret")
	}
	// All five work too.
	if got, err := Combine(shares); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("all shares: %v", err)
	}
}

func TestBadParameters(t *testing.T) {
	for _, mn := range [][2]int{{1, 3}, {4, 3}, {2, 256}, {0, 0}} {
		if _, err := Split([]byte{1}, mn[0], mn[1]); err == nil {
			t.Errorf("Split %d of %d accepted", mn[0], mn[1])
		}
	}
	s, err := Split([]byte{1, 2}, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Combine([]Share{s[0], s[0]}); err == nil {
		t.Error("repeated share accepted")
	}
	if _, err := Combine([]Share{s[0], {X: 2, Y: []byte{1}}}); err == nil {
		t.Error("shares of different lengths accepted")
	}
}
