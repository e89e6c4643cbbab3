// Command leakscan looks through test output and logs for token and secret
// values, in any of the encodings they could be printed in: as they are,
// URL-encoded, JSON-escaped, base64 (any alphabet, any alignment) or hex. It
// exits with status 1 if it finds one, naming the file, the line, the
// encoding and the pattern, but never the value (only its fingerprint).
//
//	go run ./internal/cmd/leakscan [-secrets file] file...
//
// It looks for the values in -secrets (one per line), and for the shapes of
// the tokens and secrets this repository's tests use: refreshtest's tokens
// ("rt-3-1-" and 16 hex digits), its client secret, and the fixed values of
// the root package's test servers (see package internal/leakscan). A file
// named "-" is standard input.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/oauthkit/refresh/internal/leakscan"
)

func main() {
	secretsFile := flag.String("secrets", "", "a file of secret values to look for, one per line")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: leakscan [-secrets file] file...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var secrets []string
	if *secretsFile != "" {
		b, err := os.ReadFile(*secretsFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "leakscan:", err)
			os.Exit(2)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				secrets = append(secrets, l)
			}
		}
	}
	s := leakscan.New(secrets...)
	found, lines := 0, 0
	for _, name := range flag.Args() {
		n, l, err := scanFile(s, name, os.Stdout)
		if err != nil {
			fmt.Fprintln(os.Stderr, "leakscan:", err)
			os.Exit(2)
		}
		found += n
		lines += l
	}
	if found > 0 {
		fmt.Printf("leakscan: %d leaks in %d lines of %d files\n", found, lines, flag.NArg())
		os.Exit(1)
	}
	fmt.Printf("leakscan: no leaks in %d lines of %d files\n", lines, flag.NArg())
}

// scanFile reports every leak in the file named name to w, and returns how
// many it found and how many lines it read.
func scanFile(s *leakscan.Scanner, name string, w io.Writer) (found, lines int, err error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return 0, 0, err
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		lines++
		for _, l := range s.Scan(sc.Text()) {
			found++
			fmt.Fprintf(w, "%s:%d: %s\n", name, lines, l)
		}
	}
	return found, lines, sc.Err()
}
