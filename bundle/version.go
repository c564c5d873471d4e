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
