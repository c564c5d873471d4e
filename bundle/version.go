package bundle

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// VersionFromFile reads the release version from a seed-style version.txt
// (as Flatcar's build writes it: FLATCAR_BUILD, FLATCAR_BRANCH and
// FLATCAR_PATCH, or the older COREOS_ names), giving BUILD.BRANCH.PATCH.
func VersionFromFile(b []byte) (string, error) {
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		vals[k] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	for _, prefix := range []string{"FLATCAR_", "COREOS_"} {
		build, branch, patch := vals[prefix+"BUILD"], vals[prefix+"BRANCH"], vals[prefix+"PATCH"]
		if build == "" && branch == "" && patch == "" {
			continue
		}
		v := build + "." + branch + "." + patch
		if !semver.MatchString(v) {
			return "", fmt.Errorf("version.txt: %sBUILD/BRANCH/PATCH give %q, not MAJOR.MINOR.PATCH", prefix, v)
		}
		return v, nil
	}
	return "", fmt.Errorf("version.txt: no FLATCAR_BUILD/BRANCH/PATCH (or COREOS_) lines")
}

// CompareVersions orders two MAJOR.MINOR.PATCH versions by their numbers
// (a pre-release or build suffix is ignored): -1, 0 or 1. Versions that
// are not of that form compare as 0 with ok false.
func CompareVersions(a, b string) (c int, ok bool) {
	pa, oka := versionParts(a)
	pb, okb := versionParts(b)
	if !oka || !okb {
		return 0, false
	}
	for i := range pa {
		switch {
		case pa[i] < pb[i]:
			return -1, true
		case pa[i] > pb[i]:
			return 1, true
		}
	}
	return 0, true
}

// VersionLess reports whether a is an older MAJOR.MINOR.PATCH version
// than b (CompareVersions): a version that is not of that form (a server
// may hold anything) is neither older nor newer than another.
func VersionLess(a, b string) bool {
	c, ok := CompareVersions(a, b)
	return ok && c < 0
}

func versionParts(v string) ([3]uint64, bool) {
	var p [3]uint64
	m := semver.FindStringSubmatch(v)
	if m == nil {
		return p, false
	}
	for i := range p {
		var n uint64
		for _, c := range m[i+1] {
			if n > (1<<63)/10 {
				return p, false
			}
			n = n*10 + uint64(c-'0')
		}
		p[i] = n
	}
	return p, true
}
