package p11raw

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// Module and Pinned are the module and version whose private layout Load
// reads. go.mod must require exactly Pinned (TestPinnedIsGoModVersion):
// moving miekg/pkcs11 means checking its struct ctx and moving Pinned.
const (
	Module = "github.com/miekg/pkcs11"
	Pinned = "v1.1.2"
)

// fenceOnce is nil when this binary links Module at Pinned, else why not.
var fenceOnce = sync.OnceValue(func() error {
	bi, _ := debug.ReadBuildInfo()
	return fence(bi, sourceFile())
})

// sourceFile is the file miekg's New was compiled from. In the module
// cache (or with -trimpath) it names the module and version:
// ".../github.com/miekg/pkcs11@v1.1.2/pkcs11.go".
func sourceFile() string {
	f := runtime.FuncForPC(reflect.ValueOf(pkcs11.New).Pointer())
	if f == nil {
		return ""
	}
	file, _ := f.FileLine(f.Entry())
	return file
}

// fence is nil when the build information bi says Module is linked at
// Pinned with no replace directive. go test's binaries list no
// dependencies in their build information; for them the path of Module's
// source, file, must name Module at Pinned.
func fence(bi *debug.BuildInfo, file string) error {
	if bi == nil {
		return errors.New("the binary carries no build information, so the version of " + Module + " cannot be told")
	}
	for _, d := range bi.Deps {
		if d.Path != Module {
			continue
		}
		switch {
		case d.Replace != nil:
			return fmt.Errorf("%s is replaced (by %s %s); keyward reads the private layout of %s only", Module, d.Replace.Path, d.Replace.Version, Pinned)
		case d.Version != Pinned:
			return fmt.Errorf("%s is %s; keyward reads the private layout of %s only", Module, d.Version, Pinned)
		}
		return nil
	}
	if len(bi.Deps) > 0 {
		return fmt.Errorf("%s is not in the binary's build information", Module)
	}
	if !strings.Contains(filepath.ToSlash(file), Module+"@"+Pinned+"/") {
		return fmt.Errorf("the version of %s cannot be told (its source is %q); keyward reads the private layout of %s only", Module, file, Pinned)
	}
	return nil
}
