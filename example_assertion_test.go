package refresh_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"log"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
)

// A client that authenticates with its private key (private_key_jwt,
// RFC 7523) instead of a client secret: every token request carries a new
// assertion signed by the key, which never leaves the process (or the HSM
// or KMS whose crypto.Signer it is).
func ExamplePrivateKeyJWT() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // in production: loaded, or a KMS's crypto.Signer
	if err != nil {
		log.Fatal(err)
	}
	// The authorization server knows the client by its public key.
	srv := refreshtest.NewServer(refreshtest.Options{Auth: refreshtest.AuthPrivateKeyJWT, ClientKey: key.Public(), Strict: true})
	defer srv.Close()

	assertion, err := refresh.PrivateKeyJWT(refreshtest.DefaultClientID, srv.TokenURL, key, &refresh.JWTOptions{KeyID: "2025-01"})
	if err != nil {
		log.Fatal(err)
	}
	eng, err := refresh.New(refresh.Config{Endpoint: &refresh.FormEndpoint{
		TokenURL:      srv.TokenURL,
		RevocationURL: srv.RevocationURL,
		ClientID:      refreshtest.DefaultClientID,
		Assertion:     assertion, // no ClientSecret
	}})
	if err != nil {
		log.Fatal(err)
	}
	eng.SetToken(context.Background(), refresh.DefaultKey, srv.Token())

	srv.RevokeAccessTokens() // the API will answer 401 to the current token
	for range 2 {
		resp, err := eng.Client(nil).Get(srv.URL + "/v2/account")
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println("status:", resp.StatusCode)
	}
	st := srv.Stats()
	fmt.Println("refreshes:", st.Refreshes, "assertions accepted:", st.Assertions, "rejected:", st.AssertionsRejected)
	// Output:
	// status: 200
	// status: 200
	// refreshes: 1 assertions accepted: 1 rejected: 0
}
