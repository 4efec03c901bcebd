package main

import "strings"

// boolFlags are the client flags that take no value.
var boolFlags = map[string]bool{"json": true, "help": true, "h": true}

// flagsFirst lets `neuroshard dht providers 0 --json` work: urfave/cli stops parsing flags at
// the first positional argument, so for the dht subcommands the flags (with their values) are
// moved before the positionals. Everything after "--" stays as it is.
func flagsFirst(args []string) []string {
	if len(args) < 3 || args[1] != "dht" {
		return args
	}
	out := append([]string{}, args[:3]...) // program, "dht", subcommand
	var flags, pos []string
	rest := args[3:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			pos = append(pos, rest[i:]...)
			i = len(rest)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && !boolFlags[name] && i+1 < len(rest) {
				i++
				flags = append(flags, rest[i])
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(append(out, flags...), pos...)
}
