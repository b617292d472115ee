package hsm_test

import (
	"testing"

	"github.com/keyward/keyward/internal/testmain"
)

func TestMain(m *testing.M) { testmain.Run(m) }
