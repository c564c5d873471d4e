package main

import (
	"fmt"
	"strings"
)

// habit is one au-generator flag and what augen takes instead. The table
// is the one source of doc/migrating.md's flag tables: a test checks that
// each row is there, old flag and augen flag in one row.
type habit struct {
	tool, old, augen string
}

var habits = []habit{
	{"delta_generator", "-new_image", "augen payload build --image USR.bin"},
	{"delta_generator", "-new_kernel", "--kernel VMLINUZ"},
	{"delta_generator", "-old_image", "--old OLD.bin"},
	{"delta_generator", "-old_kernel", "--old-kernel OLD_VMLINUZ"},
	{"delta_generator", "-out_file", "-o FILE"},
	{"delta_generator", "-private_key", "--key file:KEY.pem"},
	{"delta_generator", "-public_key", "--pubkey PUB.pem"},
	{"delta_generator", "-public_key_version", "no flag: the LAST --key is version 2, the signature update_engine checks"},
	{"delta_generator", "-pcr_policy", "--pcr-policy PCR.zip"},
	{"delta_generator", "-signature_size", "augen payload digest --signature-size 256 (or --pubkey per key)"},
	{"delta_generator", "-out_hash_file", "augen payload digest --digest-out HASH"},
	{"delta_generator", "-out_metadata_hash_file", "no flag: Flatcar's update_engine checks no metadata signature (augen payload inspect --json shows the metadata)"},
	{"delta_generator", "-signature_file", "augen payload attach --signature SIG --pubkey PUB.pem"},
	{"delta_generator", "-in_file", "the payload as the argument (augen payload verify/apply/digest PAYLOAD)"},
	{"delta_generator", "-prefs_dir", "no flag: augen payload apply keeps no state"},
	{"delta_generator", "-old_dir", "no flag: the images are read directly, nothing is mounted"},
	{"delta_generator", "-new_dir", "no flag: the images are read directly, nothing is mounted"},
	{"core_sign_update", "--image", "augen payload build --image USR.bin"},
	{"core_sign_update", "--output", "-o FILE"},
	{"core_sign_update", "--private_keys", "--key URI, repeated (the LAST is the one update_engine checks)"},
	{"core_sign_update", "--public_keys", "no flag: augen reads each public key from its --key"},
	{"core_sign_update", "--keys_separator", "no flag: repeat --key (key URIs contain ':')"},
	{"core_upload_update", "--app-id", "augen push --app-id ID"},
	{"core_upload_update", "--track", "augen push --channel CHANNEL"},
	{"core_upload_update", "--payload", "augen push BUNDLE (the release bundle, from augen release)"},
	{"core_upload_update", "--base-url", "augen push --public-url URL"},
	{"core_upload_update", "--bucket", "augen push --store s3://BUCKET/PREFIX"},
	{"core_upload_update", "--server", "augen push --server URL"},
}

// tools maps the au-generator tools' names, typed as augen commands, to
// what augen does instead.
var tools = map[string]string{
	"delta_generator":    `"augen payload build" (-new_image, -old_image), "augen payload verify" (-in_file with -public_key), "augen payload apply" (debug apply)`,
	"core_sign_update":   `"augen payload build --image USR.bin --kernel VMLINUZ --key URI" (one --key per key), or "augen release" for the whole release`,
	"core_upload_update": `"augen push" (with a release bundle from "augen release")`,
	"generate_payload":   `"augen release" (see doc/migrating.md)`,
}

// toolHint says what augen does instead of an au-generator tool typed as
// a command ("" when name is none).
func toolHint(name string) string {
	if t, ok := tools[name]; ok {
		return fmt.Sprintf("%s is an au-generator tool; in augen: %s (doc/migrating.md)", name, t)
	}
	return ""
}

// habitWords finds every au-generator flag in args that the command does
// not have itself, before pflag reads them: pflag would read
// "-old_image=x" as -o with the value "ld_image=x" and write a file of
// that name. A word after "--" is an argument.
func habitWords(args []string, known func(name string) bool) []string {
	var hints []string
	seen := map[string]bool{}
	for _, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			continue
		}
		name, _, _ := strings.Cut(a, "=")
		bare := strings.TrimLeft(name, "-")
		if len(bare) < 2 || known(bare) || seen[bare] {
			continue
		}
		for _, h := range habits {
			if strings.TrimLeft(h.old, "-") == bare {
				seen[bare] = true
				hints = append(hints, fmt.Sprintf("%s is %s's flag; in augen: %s", name, h.tool, h.augen))
				break
			}
		}
	}
	return hints
}

// swallowedHabit reports whether an -o value is the tail of a
// delta_generator flag that starts with "o" (-old_image=x read as -o
// "ld_image=x"), and names the flag.
func swallowedHabit(value string) string {
	name, _, _ := strings.Cut(value, "=")
	for _, h := range habits {
		if old := strings.TrimLeft(h.old, "-"); strings.HasPrefix(old, "o") && old[1:] == name {
			return h.old
		}
	}
	return ""
}

// habitHint finds an au-generator flag among args and says what augen
// takes instead ("" when there is none). A flag augen itself has (--image,
// --server) is not a habit of the command being run: known reports it.
func habitHint(args []string, known func(name string) bool) string {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(a, "=")
		bare := strings.TrimLeft(name, "-")
		if known(bare) {
			continue
		}
		for _, h := range habits {
			if strings.TrimLeft(h.old, "-") == bare {
				return fmt.Sprintf("%s is %s's flag; in augen: %s (doc/migrating.md)", name, h.tool, h.augen)
			}
		}
	}
	return ""
}

// plusHint says that a "+"-joined key list (core_sign_update's) is one key
// per flag in augen.
func plusHint(value string) string {
	if !strings.Contains(value, "+") {
		return ""
	}
	parts := strings.Split(value, "+")
	var b strings.Builder
	for _, p := range parts {
		if !strings.Contains(p, ":") {
			p = "file:" + p
		}
		if strings.ContainsAny(p, ";?&") {
			p = "'" + p + "'"
		}
		fmt.Fprintf(&b, " --key %s", p)
	}
	return "core_sign_update's \"+\"-joined key list is one --key per key in augen:" + b.String()
}
