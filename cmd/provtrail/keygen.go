package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/provtrail/provtrail/signer"
)

// runKeygen implements `provtrail keygen`: it writes NAME.key (encrypted, mode 0600) and
// NAME.pub into --out and prints the paths and the key id, never key material.
func runKeygen(_ context.Context, args []string, stdout, stderr io.Writer) int {
	return keygen(args, stdout, stderr, os.Stdin, os.Getenv)
}

// keygen is runKeygen with its terminal and environment passed in (for tests).
func keygen(args []string, stdout, stderr io.Writer, tty *os.File, getenv func(string) string) int {
	fs := newFlagSet("keygen", "keygen --out DIR [--name agent] [--type ed25519|ecdsa-p256] [--passphrase-file FILE]", stdout, stderr)
	var out, name, typ, passFile string
	fs.StringVar(&out, "out", "", "directory to write NAME.key and NAME.pub into (created with mode 0700 if missing)")
	fs.StringVar(&name, "name", "agent", "base name of the key files")
	fs.StringVar(&typ, "type", string(signer.KeyEd25519), "key type: ed25519 or ecdsa-p256")
	fs.StringVar(&passFile, "passphrase-file", "", "read the passphrase from FILE (default: $"+signer.DefaultPassphraseEnv+", else a prompt on the terminal)")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "provtrail keygen: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	if out == "" {
		fmt.Fprintln(stderr, "provtrail keygen: --out DIR is required")
		fs.Usage()
		return exitUsage
	}
	kt := signer.KeyType(typ)
	if kt != signer.KeyEd25519 && kt != signer.KeyECDSAP256 {
		fmt.Fprintf(stderr, "provtrail keygen: --type must be %s or %s, not %q\n", signer.KeyEd25519, signer.KeyECDSAP256, typ)
		return exitUsage
	}
	src := signer.PassphraseSource{
		File: passFile, Getenv: getenv, Terminal: tty, PromptOut: stderr, Confirm: true,
		Prompt: "Enter passphrase for the new private key: ",
	}
	pass, err := src.Resolve()
	if err != nil {
		fmt.Fprintf(stderr, "provtrail keygen: %v\n", err)
		if errors.Is(err, signer.ErrNoPassphrase) {
			return exitUsage
		}
		return exitFailure
	}
	defer clear(pass)
	if err := os.MkdirAll(out, 0o700); err != nil {
		fmt.Fprintf(stderr, "provtrail keygen: %v\n", err)
		return exitFailure
	}
	priv, err := signer.GenerateKey(kt)
	if err != nil {
		fmt.Fprintf(stderr, "provtrail keygen: %v\n", err)
		return exitFailure
	}
	keyPath, pubPath, err := signer.WriteKeyPair(out, name, priv, pass)
	if err != nil {
		fmt.Fprintf(stderr, "provtrail keygen: %v\n", err)
		return exitFailure
	}
	id, err := signer.KeyID(priv.Public())
	if err != nil {
		fmt.Fprintf(stderr, "provtrail keygen: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "private key: %s (encrypted, mode 0600)\npublic key:  %s\nkey type:    %s\nkey id:      %s\n", keyPath, pubPath, kt, id)
	return exitOK
}
