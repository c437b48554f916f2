package central

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// noteAlgEd25519 is the C2SP signed-note signature type byte for Ed25519.
const noteAlgEd25519 = 0x01

// NoteSigner signs C2SP signed notes (checkpoints) with an Ed25519 key. It
// implements note.Signer.
type NoteSigner struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
	sign func([]byte) ([]byte, error)
}

// NewNoteSigner returns a note signer named name (the log origin) for an
// in-memory Ed25519 key.
func NewNoteSigner(name string, priv ed25519.PrivateKey) (*NoteSigner, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("note signer: key is not an Ed25519 private key")
	}
	return NewNoteSignerFunc(name, priv.Public().(ed25519.PublicKey), func(msg []byte) ([]byte, error) {
		return ed25519.Sign(priv, msg), nil
	})
}

// NewNoteSignerFunc returns a note signer named name whose signatures are
// made by sign, which must produce pure Ed25519 signatures under pub (a key
// file or a KMS key).
func NewNoteSignerFunc(name string, pub ed25519.PublicKey, sign func([]byte) ([]byte, error)) (*NoteSigner, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("note signer: the log_signer key must be Ed25519 (C2SP signed notes)")
	}
	if !validNoteName(name) {
		return nil, fmt.Errorf("note signer: invalid name %q (no spaces, '+' or newlines)", name)
	}
	return &NoteSigner{name: name, hash: noteKeyHash(name, pub), pub: pub, sign: sign}, nil
}

// Name returns the signer's name (the log origin).
func (s *NoteSigner) Name() string { return s.name }

// KeyHash returns the C2SP key hash of the signer's public key.
func (s *NoteSigner) KeyHash() uint32 { return s.hash }

// Sign signs msg.
func (s *NoteSigner) Sign(msg []byte) ([]byte, error) {
	sig, err := s.sign(msg)
	if err != nil {
		return nil, err
	}
	// A signer that is not the key it claims would publish checkpoints
	// nobody can verify: catch it here.
	if !ed25519.Verify(s.pub, msg, sig) {
		return nil, errors.New("note signer: signature does not verify under the log public key")
	}
	return sig, nil
}

// VerifierKey returns the note verifier key string
// ("name+hash+base64(0x01||pub)") that auditors use to check checkpoints.
func (s *NoteSigner) VerifierKey() string {
	vkey, err := note.NewEd25519VerifierKey(s.name, s.pub)
	if err != nil {
		// The name was validated in NewNoteSigner and the key has the right size.
		panic(err)
	}
	return vkey
}

// Verifier returns a verifier for the signer's checkpoints.
func (s *NoteSigner) Verifier() note.Verifier {
	v, err := note.NewVerifier(s.VerifierKey())
	if err != nil {
		panic(err)
	}
	return v
}

func noteKeyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte("\n"))
	h.Write([]byte{noteAlgEd25519})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

func validNoteName(name string) bool {
	return name != "" && !strings.ContainsAny(name, "+ \t\n")
}

// ParseVerifierKey parses a note verifier key string (as written to
// LogKeyFile) and returns the verifier and the log origin it names.
func ParseVerifierKey(vkey string) (note.Verifier, string, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, "", fmt.Errorf("parse log verifier key: %w", err)
	}
	return v, v.Name(), nil
}
