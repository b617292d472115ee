// Package ceremony is the key ceremonies' file work: key material as hex
// (a file, standard input, `openssl rand -hex 32`), the security section
// of a system.yaml (read, and scrubbed of the keys once imported),
// split-knowledge components XORed together, and Shamir share files
// (ceremony/shamir splits over GF(2^8)).
//
// It never touches a device: an import goes through an Importer (a
// *node.Node registers the key too). A source file is removed or scrubbed
// only after the key is in the device with a matching KCV; on any failure
// it stays exactly as it was (invariant 2). Share and system.yaml writes
// are whole or nothing (package safefile).
//
// No key material is ever printed or put in an error: parse errors name
// the file, the line and what is wrong, never the text. Every parser here
// has a fuzz target (fuzz_test.go).
//
// Sentinel errors are in errors.go; messages name no command-line flag.
package ceremony
