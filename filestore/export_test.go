package filestore

// SyncDir is syncDir, for the test of what it opens.
var SyncDir = syncDir
