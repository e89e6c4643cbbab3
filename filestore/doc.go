// Package filestore is a [refresh.TokenStore] that keeps each key's token in
// a file of its own, in a directory that several processes of one machine
// can share.
//
//	store, err := filestore.New(filepath.Join(configDir, "myapp", "tokens"))
//	…
//	eng, err := refresh.New(refresh.Config{OAuth2: conf, Store: store})
//
// # Layout
//
// A key's files are named by the lowercase hex SHA-256 of the key, so any
// key (empty, "../x", "a/b", 1000 bytes long, or differing from another only
// by case on a case-insensitive file system) gets a distinct name that
// stays inside the directory:
//
//	<hash>.json   the token
//	<hash>.extra  the token's extras, if it has any
//	<hash>.lock   the refresh lock ([Store.Lock]), on platforms with flock
//	<hash>.wlock  the write lock of Save, CompareAndSwap and Delete, idem
//
// The token file is JSON:
//
//	{
//	  "version": 1,
//	  "key": "alice",
//	  "access_token": "…",
//	  "token_type": "Bearer",
//	  "refresh_token": "…",
//	  "expiry": "2031-05-06T07:08:09.123456789Z",
//	  "expires_in": 3600
//	}
//
// "expiry" is RFC 3339 with nanoseconds, in UTC, and is omitted when the
// token has none. The key is stored in the file (base64-encoded in an extra
// "key_base64" field if it is not valid UTF-8) and checked by Load, so a
// file copied or renamed from another key's is refused rather than handed
// out.
//
// The token's extras (oauth2.Token.Extra: id_token, scope and the like, the
// JSON scalars the engine keeps) are in "<hash>.extra", not in the token
// file: the releases before this one refuse a token file with a member they
// do not know, and would refuse every token during a rolling deploy or
// after a rollback. They never read the extras file. It holds
//
//	{"version":1,"tokens":[{"for":"<fingerprint>","extra":{"id_token":"…","scope":"…"}}]}
//
// where each entry is bound to its token by a SHA-256 fingerprint of the
// key and the token's access and refresh tokens: a token that such a
// release saved, leaving the extras file as it was, loads without the
// extras of the token it replaced. A Save writes the extras file (the new
// token's entry and the previous token's) before the token file, and a
// Save of a token without extras removes it after; a crash in between
// leaves a token without its extras at worst, never with another's. An
// extras file that cannot be decoded makes Load fail like a corrupt token
// file; a Save replaces it.
//
// # Errors
//
// Load returns [refresh.ErrNotFound] only when the key has no file. A file
// that cannot be read (permission denied) gives the operating system's
// error, wrapped. A file that cannot be decoded (truncated, not JSON, fields
// of the wrong type, another key's, a newer format version, or anything
// else the store does not write: a member it does not know, or one written
// twice or in another letter case), and anything but a regular file in its
// place (a directory, a named pipe, a symbolic link wherever it points),
// give an error wrapping [ErrCorrupt]. Either way the engine does not call
// the token endpoint on a guess. Error messages name the file but never
// contain a token.
//
// # Links and special files
//
// The store opens its files without following a symbolic link at their
// path and without blocking, and uses what it opened only if it is a
// regular file. A link in place of a token file is refused as corrupt
// (Save replaces the link itself, not what it points to). A link, named
// pipe or device in place of a lock file (on platforms with flock, see
// below) makes Lock, Save and CompareAndSwap fail with an error saying so,
// rather than create or open a file elsewhere. The directory given to [New]
// may itself be a link.
//
// # Atomicity and crashes
//
// Save and CompareAndSwap write a temporary file ("<hash>.json.tmp-…", and
// "<hash>.extra.tmp-…" for the extras file, mode 0600) in the same directory, flush it to disk, rename it over the
// token file and flush the directory. Rename is atomic, so a reader (Load
// takes no lock) and a program restarted after a crash see the old token
// or the new one, never a mix. When Save returns nil the new token is on
// disk. A temporary file is removed if anything fails, but a crash between
// its creation and the rename leaves it behind: it holds a token, is
// readable by the owner only, is never read by the store, and can be
// deleted when no process is writing.
//
// [Store.Delete] removes the token file, then the extras file and the
// key's leftover temporary files, and flushes the directory. A crash in
// between leaves files that no Load reads without a token file. The lock
// files stay (see Locks).
//
// # Locks
//
// On Linux, macOS, FreeBSD, NetBSD, OpenBSD and DragonFly BSD, the store
// uses flock(2) locks, which exclude each other between processes and also
// between goroutines of one process (the package opens the lock file anew
// for each lock), and which the kernel releases when the holding process
// dies, however it dies:
//
//   - [Store.Lock] makes the store a [refresh.Locker]: while one process
//     refreshes a key, the others wait, then adopt the token it saved. A
//     waiting Lock is blocked in flock(2) on a thread of its own, so the
//     kernel hands it the lock as soon as the holder lets go. If its
//     context ends first, Lock returns at once and the blocked call,
//     when it gets the lock, lets go of it straight away (other processes
//     may see the lock held for that moment). At most 16
//     such calls wait at once in a process (waits abandoned behind a
//     holder that never lets go keep theirs); beyond that a wait polls,
//     every 1 ms at first and every 20 ms at most, until a slot is free.
//   - [Store.TryLock] makes it a [refresh.TryLocker]: it takes the same
//     lock only if no one holds it, with one flock(2) call that does not
//     wait.
//   - Save, CompareAndSwap and Delete hold the key's write lock, a second
//     lock on "<hash>.wlock", for the time of one write, so that
//     CompareAndSwap's read, comparison and rename are one step with
//     respect to every other Save, CompareAndSwap and Delete, in every
//     process. It is a separate file because the engine calls
//     CompareAndSwap while it holds the refresh lock.
//
// Lock files are created on first use and never removed: removing one that
// another process has open would let two processes hold "the" lock at once.
// Do not delete them while a program uses the store.
//
// flock(2) locks are only as good as the file system's support for them:
// use a local file system. On NFS they may not exclude other machines, or
// may not work at all.
//
// # Other platforms
//
// Elsewhere (Windows, Solaris, illumos, AIX, Plan 9, WebAssembly) there is
// no flock(2), and Store has no Lock or TryLock method: it is not a
// [refresh.Locker]. (A Go method set cannot depend on the platform at run
// time, so the methods exist only where they work.) The engine then falls back to refreshing
// each key once at a time within its own process only: several processes
// that share the directory may refresh the same token at the same time,
// and with a rotating refresh token all but one of them may be rejected. Save,
// CompareAndSwap and Delete are atomic with respect to each other within one process
// only; every write still replaces the file whole, and the last one wins.
// Give each process its own directory there, or use a store that can lock.
//
// Platforms without O_NOFOLLOW (Windows, Plan 9, WebAssembly) check for a
// link just before opening a file, so a link put in place between the check
// and the open is followed there.
//
// On Windows a rename can also fail while another process has the token
// file open (reading it), in which case Save returns an error and the
// engine saves again later. The directory itself is not flushed, as
// Windows offers no way to.
//
// # Permissions
//
// [New] creates a missing directory with mode 0700 and token, lock and
// temporary files with mode 0600. It does not change the permissions of an
// existing directory: if others can write to it they can delete or replace
// token files, and if they can read it they can list the files (hashes of
// the keys, not the tokens) and check guesses of key names. Put the store in a directory only its owner can access. On
// Windows, file modes are not used; the directory's access control list
// applies.
package filestore
