package server

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// checkPublicURL reads a server's public URL (--public-url): the URL its
// clients reach it at, behind a load balancer the balancer's. It is the
// issuer of the tokens the server signs and the base of the URLs its
// metadata gives (RFC 8414: an https URL without query or fragment; plain
// http only on a loopback host, as the server itself).
func checkPublicURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "", fmt.Errorf("%w: --public-url %q is not an absolute URL; give the URL clients reach this server at, like https://keyward.example.com", ErrListen, raw)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return "", fmt.Errorf("%w: --public-url %q: the scheme must be https", ErrListen, raw)
	case u.Scheme == "http" && !loopback(u.Hostname()):
		return "", fmt.Errorf("%w: --public-url %q: plain http is allowed on a loopback host only; use https", ErrListen, raw)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "", fmt.Errorf("%w: --public-url %q must have no query, fragment or user", ErrListen, raw)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// defaultPublicURL is the public URL of a server given none: the address
// it listens on, with this machine's name for an address of every
// interface.
func defaultPublicURL(scheme string, addr net.Addr) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil && name != "" {
			host = name
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}
