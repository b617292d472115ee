package keystore

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The name rule. Record names are printed to terminals and logs, and are
// the rest of an API path: one rule for every write keeps a name the CLI
// stores one the API can address, shown as it is. Reads and deletes take
// any stored name, so a record an older keyward stored under a name the
// rule now refuses stays readable and deletable.

// maxRecordName bounds a record name, in bytes.
const maxRecordName = 1024

// recordNameRule ends every refusal: what a good name is.
const recordNameRule = `a record name is 1 to 1024 bytes of UTF-8, segments separated by "/" ` +
	`(no "/" first or last, no empty, "." or ".." segment), without control, ` +
	`invisible format or line separator characters`

// CheckRecordName says whether name may be written: it is not empty, at
// most 1024 bytes, valid UTF-8; it holds no control character (Cc), no
// format character (Cf: bidirectional marks, overrides and isolates,
// zero-width characters, the BOM) and no line or paragraph separator
// (Zl, Zp), which would act on a terminal instead of show, or hide; and
// it is segments separated by "/", none empty, "." or "..", so a path
// carries it as it is and nothing cleans it into another name.
func CheckRecordName(name string) error {
	if why := badRecordName(name); why != "" {
		return fmt.Errorf("%w: %s; %s", ErrRecordName, why, recordNameRule)
	}
	return nil
}

// badRecordName says what is wrong with name, or "". The name is quoted
// with %q, so what it holds is shown escaped, never raw.
func badRecordName(name string) string {
	switch {
	case name == "":
		return "the name is empty"
	case len(name) > maxRecordName:
		return fmt.Sprintf("the name is %d bytes, over %d", len(name), maxRecordName)
	case !utf8.ValidString(name):
		return fmt.Sprintf("%q is not valid UTF-8", name)
	}
	if why := badRune(name); why != "" {
		return why
	}
	return badSegments(name)
}

func badRune(name string) string {
	for _, r := range name {
		switch {
		case unicode.Is(unicode.Cc, r):
			return fmt.Sprintf("%q holds the control character %U", name, r)
		case unicode.Is(unicode.Cf, r):
			return fmt.Sprintf("%q holds the invisible format character %U", name, r)
		case unicode.In(r, unicode.Zl, unicode.Zp):
			return fmt.Sprintf("%q holds the line or paragraph separator %U", name, r)
		}
	}
	return ""
}

func badSegments(name string) string {
	switch {
	case strings.HasPrefix(name, "/"):
		return fmt.Sprintf(`%q starts with "/"`, name)
	case strings.HasSuffix(name, "/"):
		return fmt.Sprintf(`%q ends with "/"`, name)
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch seg {
		case "":
			return fmt.Sprintf(`%q has an empty segment ("//")`, name)
		case ".", "..":
			return fmt.Sprintf("%q has a %q segment", name, seg)
		}
	}
	return ""
}
