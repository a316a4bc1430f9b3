package main

import (
	"context"
	"fmt"

	"github.com/s3blk/s3blk/volume"
)

func runPasswd(args []string) error {
	fs := newFlagSet("passwd", "URL", "Change an encrypted volume's passphrase: re-wraps its master key; no block is rewritten.\n"+
		"The current passphrase is read as for mount (--passphrase-file, $"+passphraseFileEnv+", or the terminal)")
	var sf storeFlags
	var pf passphraseFlags
	sf.register(fs)
	pf.register(fs)
	newFile := fs.String("new-passphrase-file", "", "read the new passphrase from FILE (mode 0600; default: ask on the terminal, twice)")
	pos, err := parseArgs(fs, args, 1, "URL")
	if err != nil {
		return err
	}
	ctx := context.Background()
	store, h, err := sf.openVolume(ctx, pos[0], nil)
	if err != nil {
		return err
	}
	if !h.Encrypted() {
		return fmt.Errorf("%s is not encrypted: it has no passphrase to change", store.Describe())
	}
	old, err := pf.read("Current passphrase for "+store.Describe(), false)
	if err != nil {
		return err
	}
	if _, err := volume.Open(ctx, store, old, nil); err != nil {
		return err // a wrong passphrase, before asking for a new one
	}
	var next []byte
	if *newFile != "" {
		next, err = readPassphraseFile(*newFile)
	} else {
		next, err = promptPassphrase("New passphrase for "+store.Describe(), true)
	}
	if err != nil {
		return err
	}
	if err := volume.ChangePassphrase(ctx, store, old, next); err != nil {
		return err
	}
	fmt.Printf("passphrase of %s changed; the old one no longer opens it\n", store.Describe())
	return nil
}
