package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// passphraseFileEnv names a passphrase file when --passphrase-file is not given.
const passphraseFileEnv = "S3BLK_PASSPHRASE_FILE"

// maxPassphrase bounds what is read from a passphrase file.
const maxPassphrase = 4096

// passphraseFlags is how every command that opens encrypted data learns the
// passphrase: --passphrase-file, else $S3BLK_PASSPHRASE_FILE, else a prompt
// on the terminal.
type passphraseFlags struct {
	file string
}

func (p *passphraseFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.file, "passphrase-file", "", "read the passphrase from FILE (mode 0600; default $"+passphraseFileEnv+", else ask on the terminal)")
}

// configured reports whether a passphrase file is named (flag or environment).
func (p *passphraseFlags) configured() bool {
	return p.file != "" || os.Getenv(passphraseFileEnv) != ""
}

// haveTerminal reports whether a passphrase prompt is possible.
func haveTerminal() bool {
	tty, err := os.Open("/dev/tty")
	if err != nil {
		return false
	}
	defer tty.Close()
	return term.IsTerminal(int(tty.Fd()))
}

// read returns the passphrase. With confirm (creating something new) a
// terminal prompt asks twice.
func (p *passphraseFlags) read(prompt string, confirm bool) ([]byte, error) {
	file := p.file
	if file == "" {
		file = os.Getenv(passphraseFileEnv)
	}
	if file != "" {
		return readPassphraseFile(file)
	}
	return promptPassphrase(prompt, confirm)
}

// readPassphraseFile reads a passphrase file, refusing one that others can
// read or write. One trailing newline is not part of the passphrase.
func readPassphraseFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, usageError{fmt.Sprintf("passphrase file: %v", err)}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, usageError{fmt.Sprintf("passphrase file %s is accessible by others (mode %04o): run chmod 600 %s", name, perm, name)}
	}
	if fi.IsDir() {
		return nil, usageError{fmt.Sprintf("passphrase file %s is a directory", name)}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPassphrase+1))
	if err != nil {
		return nil, fmt.Errorf("reading passphrase file %s: %v", name, err)
	}
	if len(data) > maxPassphrase {
		return nil, usageError{fmt.Sprintf("passphrase file %s is longer than %d bytes", name, maxPassphrase)}
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	if len(data) == 0 {
		return nil, usageError{fmt.Sprintf("passphrase file %s is empty", name)}
	}
	return data, nil
}

var errNoPassphrase = usageError{"no passphrase: give --passphrase-file FILE or set " + passphraseFileEnv +
	" (or run on a terminal to be asked)"}

// promptPassphrase asks on the controlling terminal, never on stdin (which
// may be the data of `put`).
func promptPassphrase(prompt string, confirm bool) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, errNoPassphrase
	}
	defer tty.Close()
	if !term.IsTerminal(int(tty.Fd())) {
		return nil, errNoPassphrase
	}
	ask := func(p string) ([]byte, error) {
		fmt.Fprint(tty, p)
		pw, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		return pw, err
	}
	pw, err := ask(prompt + ": ")
	if err != nil {
		return nil, fmt.Errorf("reading passphrase: %v", err)
	}
	if len(pw) == 0 {
		return nil, usageError{"the passphrase is empty"}
	}
	if confirm {
		again, err := ask("Repeat " + prompt + ": ")
		if err != nil {
			return nil, fmt.Errorf("reading passphrase: %v", err)
		}
		if !bytes.Equal(pw, again) {
			return nil, usageError{"the passphrases do not match"}
		}
	}
	return pw, nil
}
