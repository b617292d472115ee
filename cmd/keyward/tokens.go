package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/keyward/keyward/bootstrap"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/node"
	"github.com/keyward/keyward/tokens"
	"github.com/urfave/cli/v2"
)

// withTokens opens the node, hands its token service to use and closes
// the node when use returns.
func withTokens(c *cli.Context, use func(*tokens.Service) error) error {
	return withNode(c, false, func(n *node.Node) error { return use(n.Tokens()) })
}

// printTokens calls the token service and prints what it returns as JSON:
// the whole of most token verbs once their input is read.
func printTokens[T any](c *cli.Context, call func(*tokens.Service) (T, error)) error {
	return withTokens(c, func(svc *tokens.Service) error {
		v, err := call(svc)
		if err != nil {
			return err
		}
		return printJSON(c.App.Writer, v)
	})
}

// readSecretInput reads a token from a file or standard input ("-"):
// tokens are secrets and never command-line arguments.
func readSecretInput(c *cli.Context, path string) (string, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(c.App.Reader, 64<<10))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", usagef("no token in %s", displayInput(path))
	}
	return s, nil
}

func displayInput(p string) string {
	if p == "-" {
		return "standard input"
	}
	return p
}

func tokenCommand() *cli.Command {
	tokenFile := &cli.StringFlag{Name: "token-file", Value: "-", Usage: "file holding the token; - for standard input"}
	return &cli.Command{
		Name:  "token",
		Usage: "access and refresh tokens signed in the device",
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "issue an access token (and a refresh token with --refreshable); prints JSON",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "subject", Usage: "who the token is for (required)"},
					&cli.StringFlag{Name: "scope", Usage: `space-separated scopes, e.g. "read write"`},
					&cli.StringSliceFlag{Name: "audience", Usage: "audience (repeat for several; name@* matches any instance); default this keyward"},
					&cli.DurationFlag{Name: "expires-in", Value: tokens.DefaultAccessTTL, Usage: "lifetime"},
					&cli.BoolFlag{Name: "refreshable", Usage: "also issue a refresh token"},
					&cli.DurationFlag{Name: "refresh-expires-in", Value: tokens.DefaultRefreshTTL, Usage: "how long the grant can be refreshed (refreshes never extend it)"},
					&cli.StringFlag{Name: "alg", Value: tokens.HS256, Usage: "HS256, HS384, HS512 (join key) or ES256, RS256, PS256, EdDSA (signing key)"},
					&cli.StringFlag{Name: "description", Usage: "a note kept with the token record"},
				},
				Action: func(c *cli.Context) error {
					if c.String("subject") == "" {
						return usagef("--subject is required")
					}
					expiresIn, err := lifetime(c, "expires-in")
					if err != nil {
						return err
					}
					refreshTTL, err := lifetime(c, "refresh-expires-in")
					if err != nil {
						return err
					}
					return printTokens(c, func(svc *tokens.Service) (tokens.Issued, error) {
						return svc.Create(c.Context, tokens.Request{Subject: c.String("subject"), Scope: strings.Fields(c.String("scope")),
							Audience: c.StringSlice("audience"), ExpiresIn: expiresIn, Refreshable: c.Bool("refreshable"),
							RefreshTTL: refreshTTL,
							Alg:        c.String("alg"), Description: c.String("description")})
					})
				},
			},
			{
				Name:  "verify",
				Usage: "check a token; prints its claims, or exits 3 with the reason",
				Flags: []cli.Flag{tokenFile,
					&cli.StringFlag{Name: "audience", Usage: "the audience expected (default this keyward)"},
					&cli.StringSliceFlag{Name: "alg", Usage: "accept only these algorithms (default all keyward signs with)"},
				},
				Action: func(c *cli.Context) error {
					tok, err := readSecretInput(c, c.String("token-file"))
					if err != nil {
						return err
					}
					return printTokens(c, func(svc *tokens.Service) (*tokens.Claims, error) {
						return svc.Verify(c.Context, tok, tokens.VerifyOptions{Audience: c.String("audience"), Algorithms: c.StringSlice("alg")})
					})
				},
			},
			{
				Name:  "refresh",
				Usage: "exchange a refresh token for a new access token and refresh token",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "refresh-token-file", Value: "-", Usage: "file holding the refresh token; - for standard input"},
					&cli.StringFlag{Name: "scope", Usage: "narrow the scope (never widen)"},
				},
				Action: func(c *cli.Context) error {
					rt, err := readSecretInput(c, c.String("refresh-token-file"))
					if err != nil {
						return err
					}
					var scope []string
					if c.IsSet("scope") {
						scope = strings.Fields(c.String("scope"))
					}
					return printTokens(c, func(svc *tokens.Service) (tokens.Issued, error) {
						return svc.Refresh(c.Context, rt, scope)
					})
				},
			},
			{
				Name:  "revoke",
				Usage: "revoke a token by --id, or the token in --token-file",
				Flags: []cli.Flag{&cli.StringFlag{Name: "id", Usage: "token id (jti)"}, &cli.StringFlag{Name: "token-file", Usage: "file holding the token; - for standard input"}},
				Action: func(c *cli.Context) error {
					if (c.String("id") == "") == (c.String("token-file") == "") {
						return usagef("give --id or --token-file")
					}
					var tok string
					if f := c.String("token-file"); f != "" {
						var err error
						if tok, err = readSecretInput(c, f); err != nil {
							return err
						}
					}
					return withTokens(c, func(svc *tokens.Service) error {
						var err error
						if tok != "" {
							err = svc.RevokeToken(c.Context, tok)
						} else {
							err = svc.Revoke(c.Context, c.String("id"))
						}
						if err != nil {
							return err
						}
						fmt.Fprintln(c.App.ErrWriter, "keyward: token revoked")
						return nil
					})
				},
			},
			{
				Name:  "list",
				Usage: "list issued tokens, newest first (ids and claims, never the tokens)",
				Flags: []cli.Flag{&cli.StringFlag{Name: "subject"}, &cli.BoolFlag{Name: "all", Usage: "include expired, revoked and used tokens"},
					&cli.IntFlag{Name: "page-size", Value: keystore.MaxTokenPage, Usage: fmt.Sprintf("records read from the database at a time, 1 to %d: each is printed as it comes", keystore.MaxTokenPage)}},
				Action: listTokens,
			},
			{
				Name:  "introspect",
				Usage: "RFC 7662 introspection: {\"active\": …} and the claims",
				Flags: []cli.Flag{tokenFile, &cli.StringFlag{Name: "audience"}},
				Action: func(c *cli.Context) error {
					tok, err := readSecretInput(c, c.String("token-file"))
					if err != nil {
						return err
					}
					return printTokens(c, func(svc *tokens.Service) (*tokens.Introspection, error) {
						return svc.Introspect(c.Context, tok, tokens.VerifyOptions{Audience: c.String("audience")})
					})
				},
			},
			{
				Name:  "jwks",
				Usage: "print the public keys of the signing key pairs as a JWKS",
				Action: func(c *cli.Context) error {
					return printTokens(c, func(svc *tokens.Service) (tokens.JWKSet, error) { return svc.JWKS(c.Context) })
				},
			},
		},
	}
}

// listTokens prints the listing a page at a time, so that a million
// tokens print in the memory of one page.
func listTokens(c *cli.Context) error {
	size := c.Int("page-size")
	if size < 1 || size > keystore.MaxTokenPage {
		return usagef("--page-size must be from 1 to %d", keystore.MaxTokenPage)
	}
	f := keystore.TokenFilter{Subject: c.String("subject"), All: c.Bool("all"), Descending: true, Limit: size}
	return withTokens(c, func(svc *tokens.Service) error {
		if c.Bool("json") {
			arr := newJSONArray(c.App.Writer)
			err := svc.ListPages(c.Context, f, func(page []keystore.TokenRecord) error {
				for _, t := range page {
					if err := arr.add(t); err != nil {
						return err
					}
				}
				return arr.flush()
			})
			if err != nil {
				return err // the array is left open: a cut listing must not read as whole
			}
			return arr.close()
		}
		header := []string{"ID", "KIND", "SUBJECT", "SCOPE", "EXPIRES", "STATE"}
		now := time.Now()
		return svc.ListPages(c.Context, f, func(page []keystore.TokenRecord) error {
			rows := make([][]string, len(page))
			for i, t := range page {
				rows[i] = []string{t.ID, t.Kind, t.Subject, orDash(t.Scope), t.Expires.Format(time.RFC3339), tokenState(t, now)}
			}
			printTable(c.App.Writer, header, rows)
			header = nil // once, above the first page
			return nil
		})
	})
}

// pairingOutput is what the pairing verbs print: the token under name,
// its id and its lifetime.
func pairingOutput(name string, iss tokens.Issued) map[string]any {
	return map[string]any{name: iss.AccessToken, "token_id": iss.TokenID, "expires_in": iss.ExpiresIn}
}

func tokenState(t keystore.TokenRecord, now time.Time) string {
	switch {
	case t.Revoked != nil:
		return "revoked"
	case t.Consumed != nil:
		return "used"
	case now.After(t.Expires):
		return "expired"
	}
	return "valid"
}

func pairingCommand() *cli.Command {
	return &cli.Command{
		Name:  "pairing",
		Usage: "single-use pairing tokens, exchanged for long-lived master tokens",
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "issue a pairing token (5 minutes, single use)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "base-url", Usage: "the service's base URL (required)"},
					&cli.StringFlag{Name: "exchange-url", Usage: "where the pairing token is exchanged (required)"},
					&cli.StringFlag{Name: "pairing-url", Usage: "optional pairing URL"},
					&cli.StringFlag{Name: "subject", Value: "pairing"},
					&cli.DurationFlag{Name: "expires-in", Value: tokens.DefaultPairingTTL},
					&cli.StringFlag{Name: "description"},
				},
				Action: func(c *cli.Context) error {
					expiresIn, err := lifetime(c, "expires-in")
					if err != nil {
						return err
					}
					return printTokens(c, func(svc *tokens.Service) (map[string]any, error) {
						iss, err := svc.CreatePairing(c.Context, tokens.PairingRequest{Subject: c.String("subject"), BaseURL: c.String("base-url"),
							ExchangeURL: c.String("exchange-url"), PairingURL: c.String("pairing-url"), ExpiresIn: expiresIn, Description: c.String("description")})
						return pairingOutput("pairing_token", iss), err
					})
				},
			},
			{
				Name:  "redeem",
				Usage: "exchange a pairing token (once) for a master token",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "token-file", Value: "-", Usage: "file holding the pairing token; - for standard input"},
					&cli.DurationFlag{Name: "expires-in", Value: tokens.DefaultMasterTTL, Usage: "master token lifetime"},
				},
				Action: func(c *cli.Context) error {
					expiresIn, err := lifetime(c, "expires-in")
					if err != nil {
						return err
					}
					tok, err := readSecretInput(c, c.String("token-file"))
					if err != nil {
						return err
					}
					return printTokens(c, func(svc *tokens.Service) (map[string]any, error) {
						iss, err := svc.RedeemPairing(c.Context, tok, expiresIn)
						return pairingOutput("master_token", iss), err
					})
				},
			},
			{
				Name:  "revoke",
				Usage: "revoke a pairing token by id",
				Flags: []cli.Flag{&cli.StringFlag{Name: "id", Usage: "the pairing token's id (required)"}},
				Action: func(c *cli.Context) error {
					if c.String("id") == "" {
						return usagef("--id is required")
					}
					return withTokens(c, func(svc *tokens.Service) error {
						if err := svc.Revoke(c.Context, c.String("id")); err != nil {
							return err
						}
						fmt.Fprintln(c.App.ErrWriter, "keyward: pairing token revoked")
						return nil
					})
				},
			},
		},
	}
}

func bootstrapCommand() *cli.Command {
	return &cli.Command{
		Name:  "bootstrap",
		Usage: "import $KEYWARD_HOME/bootstrap/keys/*.key and answer generate.token.json with an admin token",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "token-delete-after", Value: time.Minute, Usage: "delete etc/keys/token.json this long after writing it"},
			&cli.BoolFlag{Name: "watch", Usage: "keep watching bootstrap/keys for new requests"},
			transferableFlag,
		},
		Action: runBootstrap,
	}
}

func runBootstrap(c *cli.Context) error {
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return withNode(c, true, func(n *node.Node) error {
		return bootstrap.Run(ctx, n, bootstrap.Options{Home: n.Home(), Policy: policyFlag(c), DeleteAfter: c.Duration("token-delete-after"),
			Watch: c.Bool("watch"), Report: func(s string) { fmt.Fprintln(c.App.Writer, "bootstrap: "+s) }})
	})
}
