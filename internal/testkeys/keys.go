// Package testkeys holds the signing keys of the module's tests, made
// once per test binary: an RSA key takes long enough to generate under
// the race detector that no test should make its own.
package testkeys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"sync"
)

// RSA returns a 2048-bit RSA key, the same one on every call.
var RSA = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// EC returns an ECDSA P-256 key, the same one on every call.
var EC = sync.OnceValue(func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
})
