package server_test

import (
	"context"
	"testing"

	"github.com/keyward/keyward/internal/testmain"
)

var bg = context.Background()

func TestMain(m *testing.M) { testmain.Run(m) }
