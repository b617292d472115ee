package ceremony

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/keyward/keyward/ceremony/shamir"
	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/safefile"
)

// A share travels as one line (docs/CEREMONY.md):
//
//	kwshare1:<index>:<threshold>:<shares>:<split id>:<key KCV>:<share hex>:<fingerprint>
//
// The fingerprint is the first 8 hex digits of SHA-256 over everything
// before it, so a mistyped or damaged share is caught on its own. The key
// KCV lets combine prove the reconstruction before anything is imported.
const sharePrefix = "kwshare1"

// ShareInfo is a parsed share.
type ShareInfo struct {
	Index, Threshold, Shares int
	SplitID, KeyKCV          string
	Fingerprint              string
	share                    shamir.Share
}

func fingerprint(body string) string {
	sum := sha256.Sum256([]byte(body))
	return strings.ToUpper(hex.EncodeToString(sum[:4]))
}

// SplitKey splits key into n shares, any m of which rebuild it, and returns
// each share's one-line form and info. kcv is the key's KCV.
func SplitKey(key []byte, kcv string, m, n int) ([]string, []ShareInfo, error) {
	shares, err := shamir.Split(key, m, n)
	if err != nil {
		return nil, nil, err
	}
	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		return nil, nil, err
	}
	splitID := hex.EncodeToString(id)
	lines := make([]string, n)
	infos := make([]ShareInfo, n)
	for i, s := range shares {
		body := fmt.Sprintf("%s:%d:%d:%d:%s:%s:%s", sharePrefix, s.X, m, n, splitID, kcv, hex.EncodeToString(s.Y))
		clear(s.Y)
		fp := fingerprint(body)
		lines[i] = body + ":" + fp
		infos[i] = ShareInfo{Index: int(s.X), Threshold: m, Shares: n, SplitID: splitID, KeyKCV: kcv, Fingerprint: fp}
	}
	return lines, infos, nil
}

// WriteShareFile writes one share to dir as share-<index>-of-<n>.txt, 0600,
// with a readable header, whole or not at all. It refuses to overwrite a
// file.
func WriteShareFile(dir, line string, info ShareInfo) (string, error) {
	path := filepath.Join(dir, fmt.Sprintf("share-%d-of-%d.txt", info.Index, info.Shares))
	var b strings.Builder
	fmt.Fprintf(&b, "# keyward key share %d of %d: any %d shares rebuild the key.\n", info.Index, info.Shares, info.Threshold)
	fmt.Fprintf(&b, "# split %s, key KCV %s, share fingerprint %s.\n", info.SplitID, info.KeyKCV, info.Fingerprint)
	fmt.Fprintf(&b, "# Keep it secret; bring it to: keyward ceremony combine --share FILE ...\n")
	fmt.Fprintln(&b, line)
	// Whole or not at all: an interrupted split leaves no partial share.
	if err := safefile.WriteNewFile(path, []byte(b.String()), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// ParseShare reads a share's one-line form; what names it in errors.
func ParseShare(line, what string) (ShareInfo, error) {
	line = strings.TrimSpace(line)
	parts := strings.Split(line, ":")
	if len(parts) != 8 || parts[0] != sharePrefix {
		return ShareInfo{}, fmt.Errorf("%w: %s is not a keyward share (kwshare1:…)", ErrMalformed, what)
	}
	body := strings.Join(parts[:7], ":")
	if !strings.EqualFold(fingerprint(body), parts[7]) {
		return ShareInfo{}, fmt.Errorf("%w: %s is damaged: its fingerprint does not match its content", ErrMalformed, what)
	}
	var nums [3]int
	for i := range nums {
		n, err := strconv.Atoi(parts[1+i])
		if err != nil || n < 1 || n > 255 || strconv.Itoa(n) != parts[1+i] {
			return ShareInfo{}, fmt.Errorf("%w: %s: bad share numbers", ErrMalformed, what)
		}
		nums[i] = n
	}
	// What SplitKey writes, and nothing else: a hand-edited line whose
	// fingerprint was recomputed still cannot claim share 7 of 5.
	if index, threshold, shares := nums[0], nums[1], nums[2]; threshold < 2 || threshold > shares || index > shares {
		return ShareInfo{}, fmt.Errorf("%w: %s: share %d, any %d of %d, cannot be", ErrMalformed, what, index, threshold, shares)
	}
	if !hexDigits(parts[4], 8) || !hexDigits(parts[5], 6) {
		return ShareInfo{}, fmt.Errorf("%w: %s: the split id must be 8 hex digits and the KCV 6", ErrMalformed, what)
	}
	y, err := hex.DecodeString(parts[6])
	if err != nil {
		return ShareInfo{}, fmt.Errorf("%w: %s: share is not hex", ErrMalformed, what)
	}
	if len(y) != 16 && len(y) != 24 && len(y) != 32 {
		clear(y)
		return ShareInfo{}, fmt.Errorf("%w: %s: a share is as long as an AES key (16, 24 or 32 bytes), not %d", ErrMalformed, what, len(y))
	}
	return ShareInfo{Index: nums[0], Threshold: nums[1], Shares: nums[2], SplitID: parts[4], KeyKCV: strings.ToUpper(parts[5]),
		Fingerprint: strings.ToUpper(parts[7]), share: shamir.Share{X: byte(nums[0]), Y: y}}, nil
}

// hexDigits says s is n hex digits.
func hexDigits(s string, n int) bool {
	return len(s) == n && !strings.ContainsFunc(s, func(r rune) bool { return r > 0x7f || !isHex(byte(r)) })
}

// ReadShareFile reads the share line of a share file (comments skipped).
func ReadShareFile(path string) (ShareInfo, error) {
	text, err := readSmallFile(path)
	if err != nil {
		return ShareInfo{}, err
	}
	defer clear(text)
	return ParseShare(shareLine(bytes.NewReader(text)), path)
}

func shareLine(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return ""
}

// CombineShares rebuilds the key from shares of one split. It refuses
// shares of different splits, repeated shares and fewer than the
// threshold, and checks the result against the KCV recorded at split time
// with kcvOf (so a wrong key is never returned).
func CombineShares(shares []ShareInfo, kcvOf func([]byte) (string, error)) ([]byte, error) {
	if len(shares) == 0 {
		return nil, fmt.Errorf("%w: no shares given", ErrShares)
	}
	first := shares[0]
	seen := map[int]bool{}
	parts := make([]shamir.Share, len(shares))
	for i, s := range shares {
		if s.SplitID != first.SplitID || s.Threshold != first.Threshold || s.KeyKCV != first.KeyKCV {
			return nil, fmt.Errorf("%w: share %d belongs to split %s, share %d to split %s", ErrShares, s.Index, s.SplitID, first.Index, first.SplitID)
		}
		if seen[s.Index] {
			return nil, fmt.Errorf("%w: share %d was given twice", ErrShares, s.Index)
		}
		seen[s.Index] = true
		parts[i] = s.share
	}
	if len(shares) < first.Threshold {
		return nil, fmt.Errorf("%w: this split needs %d shares, got %d", ErrShares, first.Threshold, len(shares))
	}
	key, err := shamir.Combine(parts)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrShares, err)
	}
	kcv, err := hsm.ComputeKCV(key)
	if err != nil || kcv != first.KeyKCV {
		clear(key)
		return nil, fmt.Errorf("%w: the rebuilt key has KCV %s, the shares expect %s", ErrShares, kcv, first.KeyKCV)
	}
	return key, nil
}

// Split is what SplitToFiles made: the key's KCV and the share files.
type Split struct {
	KCV       string         `json:"kcv"`
	Bits      int            `json:"bits"`
	Threshold int            `json:"threshold"`
	SplitID   string         `json:"split_id"`
	Shares    []WrittenShare `json:"shares"`
}

// WrittenShare is one share file of a split.
type WrittenShare struct {
	Index       int    `json:"index"`
	File        string `json:"file"`
	Fingerprint string `json:"fingerprint"`
}

// SplitToFiles makes a random AES key of bits in memory, splits it into n
// Shamir shares any m of which rebuild it, and writes each to its own file
// in dir (created 0700; each file whole or not at all, never over another).
// The key is not imported anywhere and is cleared before it returns.
func SplitToFiles(dir string, bits, m, n int) (Split, error) {
	key, err := NewRandomKey(bits)
	if err != nil {
		return Split{}, err
	}
	defer clear(key)
	kcv, err := hsm.ComputeKCV(key)
	if err != nil {
		return Split{}, err
	}
	lines, infos, err := SplitKey(key, kcv, m, n)
	if err != nil {
		return Split{}, fmt.Errorf("%w: %w", ErrShares, err)
	}
	defer clear(lines)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Split{}, err
	}
	out := Split{KCV: kcv, Bits: bits, Threshold: m, SplitID: infos[0].SplitID}
	for i, line := range lines {
		path, err := WriteShareFile(dir, line, infos[i])
		if err != nil {
			return Split{}, fmt.Errorf("write share %d: %w (remove the share files already written and start again)", i+1, err)
		}
		out.Shares = append(out.Shares, WrittenShare{infos[i].Index, path, infos[i].Fingerprint})
	}
	return out, nil
}
