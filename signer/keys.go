package signer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// KeyType names a supported key algorithm.
type KeyType string

// Key types accepted by GenerateKey and by `provtrail keygen --type`.
const (
	// KeyEd25519 is pure Ed25519 (RFC 8032). Chain keys are always Ed25519.
	KeyEd25519 KeyType = "ed25519"
	// KeyECDSAP256 is ECDSA over NIST P-256 with SHA-256, signatures ASN.1 DER.
	KeyECDSAP256 KeyType = "ecdsa-p256"
)

// DefaultPassphraseEnv is the environment variable read for a key passphrase.
const DefaultPassphraseEnv = "PROVTRAIL_PASSPHRASE"

// KMS key reference schemes understood by LoadPrivateKey. Whether a scheme works depends on
// the sigstore KMS providers linked into the binary or on a sigstore KMS plugin
// (`sigstore-kms-<scheme>`) on PATH; see LoadPrivateKey.
var kmsSchemes = []string{"hashivault://", "openbao://", "awskms://", "gcpkms://", "azurekms://", "fakekms://"}

// ErrEncryptedKey is returned by LoadPrivateKey when the key file is encrypted and no
// passphrase was given.
var ErrEncryptedKey = errors.New("private key is encrypted: a passphrase is required")

// GenerateKey makes a new private key of type t using crypto/rand.
func GenerateKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case KeyEd25519, "":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		return priv, nil
	case KeyECDSAP256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ecdsa-p256 key: %w", err)
		}
		return priv, nil
	default:
		return nil, fmt.Errorf("unsupported key type %q (want %q or %q)", t, KeyEd25519, KeyECDSAP256)
	}
}

// MarshalPrivateKeyPEM encodes priv as PEM. With a non-empty passphrase the result is
// sigstore/cosign's `ENCRYPTED SIGSTORE PRIVATE KEY` (PKCS#8 DER encrypted with scrypt +
// nacl/secretbox by go-securesystemslib, see cryptoutils.MarshalPrivateKeyToEncryptedDER);
// with an empty passphrase it is an unencrypted PKCS#8 `PRIVATE KEY` block.
func MarshalPrivateKeyPEM(priv crypto.PrivateKey, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		out, err := cryptoutils.MarshalPrivateKeyToPEM(priv)
		if err != nil {
			return nil, fmt.Errorf("marshal private key: %w", err)
		}
		return out, nil
	}
	der, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(priv, cryptoutils.StaticPasswordFunc(passphrase))
	if err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	return cryptoutils.PEMEncode(cryptoutils.EncryptedSigstorePrivateKeyPEMType, der), nil
}

// MarshalPublicKeyPEM encodes pub as a PEM `PUBLIC KEY` block (PKIX SubjectPublicKeyInfo).
func MarshalPublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	out, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return out, nil
}

// ParsePublicKeyPEM decodes a PEM `PUBLIC KEY` block holding an Ed25519 or ECDSA P-256 key.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// WriteKeyPair writes priv to DIR/NAME.key (mode 0600, encrypted when passphrase is
// non-empty, see MarshalPrivateKeyPEM) and its public key to DIR/NAME.pub (mode 0644).
// It refuses to overwrite existing files. Both files are written with
// write-temp + fsync + link + directory fsync, so a crash never leaves a partial key file.
func WriteKeyPair(dir, name string, priv crypto.Signer, passphrase []byte) (keyPath, pubPath string, err error) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return "", "", fmt.Errorf("invalid key name %q", name)
	}
	keyPath = filepath.Join(dir, name+".key")
	pubPath = filepath.Join(dir, name+".pub")
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("write key pair: %s already exists", p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", "", fmt.Errorf("write key pair: %w", err)
		}
	}
	privPEM, err := MarshalPrivateKeyPEM(priv, passphrase)
	if err != nil {
		return "", "", err
	}
	pubPEM, err := MarshalPublicKeyPEM(priv.Public())
	if err != nil {
		return "", "", err
	}
	if err := writeFileExclusive(keyPath, privPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := writeFileExclusive(pubPath, pubPEM, 0o644); err != nil {
		return "", "", err
	}
	return keyPath, pubPath, nil
}

// KeyID returns the key id of pub: the lowercase hex SHA-256 of the DER-encoded PKIX
// SubjectPublicKeyInfo (64 characters). It is what `key_id` in a batch header and
// `keyid` in the DSSE signature carry, and what `provtrail keygen` prints.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("key id: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// ed25519SPKIPrefix is the fixed DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
var ed25519SPKIPrefix = [12]byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}

// ed25519KeyID is KeyID for a raw Ed25519 key without going through x509.
func ed25519KeyID(pub ed25519.PublicKey) string {
	var buf [44]byte
	copy(buf[:12], ed25519SPKIPrefix[:])
	copy(buf[12:], pub)
	sum := sha256.Sum256(buf[:])
	return hex.EncodeToString(sum[:])
}

func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("ed25519 public key has %d bytes", len(k))
		}
		return nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("unsupported ECDSA curve %s (only P-256)", k.Curve.Params().Name)
		}
		return nil
	default:
		return fmt.Errorf("unsupported public key type %T (want Ed25519 or ECDSA P-256)", pub)
	}
}

// PrivateKey is a loaded signing key: a key file or a KMS reference. It never exposes
// private key material. Safe for concurrent use if the underlying sigstore signer is.
type PrivateKey struct {
	signer signature.Signer
	pub    crypto.PublicKey
	id     string
	ref    string
}

// NewPrivateKey wraps an in-memory Ed25519 or ECDSA P-256 private key.
func NewPrivateKey(priv crypto.Signer) (*PrivateKey, error) {
	if err := checkPublicKey(priv.Public()); err != nil {
		return nil, err
	}
	sv, err := signature.LoadSignerVerifier(priv, hashFor(priv.Public()))
	if err != nil {
		return nil, fmt.Errorf("load signer: %w", err)
	}
	return newPrivateKey(sv, priv.Public(), "memory")
}

func newPrivateKey(s signature.Signer, pub crypto.PublicKey, ref string) (*PrivateKey, error) {
	id, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{signer: s, pub: pub, id: id, ref: ref}, nil
}

// Public returns the public key.
func (k *PrivateKey) Public() crypto.PublicKey { return k.pub }

// KeyID returns KeyID(k.Public()).
func (k *PrivateKey) KeyID() string { return k.id }

// String names the key by where it came from and its id, never its material.
func (k *PrivateKey) String() string { return fmt.Sprintf("%s (key id %s)", k.ref, k.id) }

// Sign signs msg: pure Ed25519 over msg, or ECDSA P-256 over SHA-256(msg) (ASN.1 DER).
func (k *PrivateKey) Sign(ctx context.Context, msg []byte) ([]byte, error) {
	sig, err := k.signer.SignMessage(bytes.NewReader(msg), options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("sign with %s: %w", k, err)
	}
	return sig, nil
}

func hashFor(pub crypto.PublicKey) crypto.Hash {
	if _, ok := pub.(ed25519.PublicKey); ok {
		return crypto.Hash(0)
	}
	return crypto.SHA256
}

// IsKMSRef reports whether ref is a KMS key reference (scheme://...) rather than a path.
func IsKMSRef(ref string) bool {
	for _, s := range kmsSchemes {
		if strings.HasPrefix(ref, s) {
			return true
		}
	}
	return false
}

// LoadPrivateKey loads a signing key from ref, which is either
//
//   - a PEM file path: `ENCRYPTED SIGSTORE PRIVATE KEY` (or legacy `ENCRYPTED COSIGN PRIVATE
//     KEY`) decrypted with passphrase, or an unencrypted PKCS#8 `PRIVATE KEY` / `EC PRIVATE
//     KEY` (passphrase ignored); an encrypted file without passphrase fails with
//     ErrEncryptedKey, a wrong passphrase fails with an error saying so;
//   - a sigstore KMS reference (`hashivault://`, `openbao://`, `awskms://`, `gcpkms://`,
//     `azurekms://`), resolved by sigstore's kms registry (kms.Get). This package links no
//     provider module: the program registers the ones it wants (the provtrail binary links
//     Vault/OpenBao and AWS KMS, and Google Cloud KMS and Azure Key Vault with the build
//     tags kms_gcp and kms_azure), or the sigstore KMS plugin `sigstore-kms-<scheme>` is on
//     PATH. Otherwise the error says the provider is not available.
//
// Only Ed25519 and ECDSA P-256 keys are accepted.
func LoadPrivateKey(ctx context.Context, ref string, passphrase []byte) (*PrivateKey, error) {
	if IsKMSRef(ref) {
		return loadKMSKey(ctx, ref)
	}
	data, err := os.ReadFile(ref)
	if err != nil {
		return nil, fmt.Errorf("load private key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("load private key %s: no PEM block found", ref)
	}
	var pf cryptoutils.PassFunc
	switch block.Type {
	case string(cryptoutils.EncryptedSigstorePrivateKeyPEMType), "ENCRYPTED COSIGN PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("load private key %s: %w", ref, ErrEncryptedKey)
		}
		pf = cryptoutils.StaticPasswordFunc(passphrase)
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(data, pf)
	if err != nil {
		if strings.Contains(err.Error(), "decryption failed") {
			return nil, fmt.Errorf("load private key %s: wrong passphrase or corrupted key file: %w", ref, err)
		}
		return nil, fmt.Errorf("load private key %s: %w", ref, err)
	}
	cs, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("load private key %s: unsupported key type %T", ref, priv)
	}
	if err := checkPublicKey(cs.Public()); err != nil {
		return nil, fmt.Errorf("load private key %s: %w", ref, err)
	}
	sv, err := signature.LoadSignerVerifier(cs, hashFor(cs.Public()))
	if err != nil {
		return nil, fmt.Errorf("load private key %s: %w", ref, err)
	}
	return newPrivateKey(sv, cs.Public(), ref)
}

func loadKMSKey(ctx context.Context, ref string) (*PrivateKey, error) {
	sv, err := kms.Get(ctx, ref, crypto.SHA256)
	if err != nil {
		var nf *kms.ProviderNotFoundError
		if errors.As(err, &nf) {
			scheme, _, _ := strings.Cut(ref, "://")
			return nil, fmt.Errorf("load key %s: KMS provider %q is not linked into this build and no sigstore-kms-%s plugin is on PATH (use a key file, a build with the provider's kms_* tag, or the sigstore KMS plugin): %w",
				ref, scheme+"://", scheme, err)
		}
		return nil, fmt.Errorf("load key %s: KMS provider not configured or unreachable: %w", ref, err)
	}
	pub, err := sv.PublicKey(options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("load key %s: fetch public key: %w", ref, err)
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, fmt.Errorf("load key %s: %w", ref, err)
	}
	if _, ok := pub.(ed25519.PublicKey); ok {
		// Headers are signed with pure Ed25519 over the message. A provider
		// made for SHA-256 would have the KMS sign SHA-256(message) instead
		// (Vault's transit engine does), which no verifier accepts.
		if sv, err = kms.Get(ctx, ref, crypto.Hash(0)); err != nil {
			return nil, fmt.Errorf("load key %s: this KMS provider cannot sign with pure Ed25519 (use an ECDSA P-256 key): %w", ref, err)
		}
	}
	return newPrivateKey(sv, pub, ref)
}

// LoadPublicKey reads a PEM `PUBLIC KEY` file (as written by `provtrail keygen`).
func LoadPublicKey(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load public key: %w", err)
	}
	pub, err := ParsePublicKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("load public key %s: %w", path, err)
	}
	return pub, nil
}

// PassphraseSource says where a key passphrase comes from. Resolve tries, in order: File
// (trailing newline stripped), the environment variable Env (DefaultPassphraseEnv when
// empty; set NoEnv to skip it), then a prompt on Terminal when it is a terminal.
type PassphraseSource struct {
	File   string
	Env    string
	NoEnv  bool
	Getenv func(string) string // nil = os.Getenv
	// Terminal is the file descriptor owner to prompt on (usually os.Stdin); nil = no prompt.
	Terminal *os.File
	// Prompt is written to PromptOut before reading (default "Enter passphrase: ").
	Prompt    string
	PromptOut io.Writer
	// Confirm asks twice on a terminal and fails when the answers differ (for keygen).
	Confirm bool
}

// ErrNoPassphrase is returned by PassphraseSource.Resolve when no source yields one.
var ErrNoPassphrase = errors.New("no passphrase: use a passphrase file, the " + DefaultPassphraseEnv + " variable, or run on a terminal")

// Resolve returns the passphrase. The caller should zero it after use.
func (s PassphraseSource) Resolve() ([]byte, error) {
	if s.File != "" {
		data, err := os.ReadFile(s.File)
		if err != nil {
			return nil, fmt.Errorf("read passphrase file: %w", err)
		}
		data = bytes.TrimRight(data, "\r\n")
		if len(data) == 0 {
			return nil, fmt.Errorf("passphrase file %s is empty", s.File)
		}
		return data, nil
	}
	if !s.NoEnv {
		name := s.Env
		if name == "" {
			name = DefaultPassphraseEnv
		}
		get := s.Getenv
		if get == nil {
			get = os.Getenv
		}
		if v := get(name); v != "" {
			return []byte(v), nil
		}
	}
	if s.Terminal != nil && isTerminal(s.Terminal) {
		return s.prompt()
	}
	return nil, ErrNoPassphrase
}

func (s PassphraseSource) prompt() ([]byte, error) {
	out := s.PromptOut
	if out == nil {
		out = io.Discard
	}
	msg := s.Prompt
	if msg == "" {
		msg = "Enter passphrase: "
	}
	fmt.Fprint(out, msg)
	p1, err := readPassword(s.Terminal)
	fmt.Fprintln(out)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if len(p1) == 0 {
		return nil, errors.New("empty passphrase")
	}
	if s.Confirm {
		fmt.Fprint(out, "Enter passphrase again: ")
		p2, err := readPassword(s.Terminal)
		fmt.Fprintln(out)
		if err != nil {
			return nil, fmt.Errorf("read passphrase: %w", err)
		}
		if !bytes.Equal(p1, p2) {
			return nil, errors.New("passphrases do not match")
		}
	}
	return p1, nil
}
