package nebraskatest

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	app = "e96281a6-d1af-4bde-9a0a-97b76e56dc57"
	ch  = "266622eb-ef82-4ec1-bb9d-f8116417f51b"
	pkg = "e4558763-e311-4d5a-9aa2-8553184fae5d"
)

func transcript(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/transcripts", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recordedHeaders parses a recorded header block.
func recordedHeaders(t *testing.T, name string) http.Header {
	h := http.Header{}
	for _, line := range strings.Split(string(transcript(t, name)), "\r\n")[1:] {
		if k, v, ok := strings.Cut(line, ": "); ok {
			h.Add(k, v)
		}
	}
	return h
}

// TestReplayRecordings sends the recorded requests in their order (with
// the one-time admin setup between 06 and 07) and compares status, body
// byte for byte, and the headers that are not per-request.
func TestReplayRecordings(t *testing.T) {
	s := Start(t)
	ids := []string{pkg, "ed273114-e474-4f6f-bb07-3d9be51947e5", ch, "6a0440d7-c769-4426-8f29-cd0126609932"}
	s.NewID = func() string { id := ids[0]; ids = ids[1:]; return id }
	clock := []string{"2026-11-25T22:29:23.960013Z", "2026-11-25T22:29:24.183727Z", "2026-11-25T22:29:24.368171Z"}
	s.Now = func() time.Time { tm, _ := time.Parse(time.RFC3339Nano, clock[0]); clock = clock[1:]; return tm }

	pkgReq := bytes.ReplaceAll(transcript(t, "04-create-package.request.json"), []byte("\n"), nil)
	missing := `{"application_id":"` + app + `","arch":1,"description":"d","filename":"f","hash":"h","size":"1","type":1,"url":"u","version":"9999.5.0"}`
	steps := []struct {
		name, method, path, ctype string
		body                      []byte
	}{
		{"01-get-app", "GET", "/api/apps/" + app, "", nil},
		{"02-list-channels", "GET", "/api/apps/" + app + "/channels?page=1&perpage=50", "", nil},
		{"03-list-packages-empty-search", "GET", "/api/apps/" + app + "/packages?searchVersion=9999", "", nil},
		{"04-create-package", "POST", "/api/apps/" + app + "/packages", "application/json", pkgReq},
		{"05-create-package-duplicate", "POST", "/api/apps/" + app + "/packages", "application/json", pkgReq},
		{"06-create-package-missing-field", "POST", "/api/apps/" + app + "/packages", "application/json", []byte(missing)},
		{"setup-channel", "POST", "/api/apps/" + app + "/channels", "application/json", []byte(`{"name":"dev-channel","color":"#777777","arch":1,"application_id":"` + app + `"}`)},
		{"07-create-group", "POST", "/api/apps/" + app + "/groups", "application/json", []byte(`{"name":"Dev (AMD64)","description":"dev","channel_id":"` + ch + `","track":"dev-channel","policy_updates_enabled":true,"policy_safe_mode":false,"policy_office_hours":false,"policy_timezone":"UTC","policy_period_interval":"1 minutes","policy_max_updates_per_period":999999,"policy_update_timeout":"60 minutes"}`)},
		{"08-get-channel", "GET", "/api/apps/" + app + "/channels/" + ch, "", nil},
		{"09-put-channel", "PUT", "/api/apps/" + app + "/channels/" + ch, "application/json", []byte(`{"name":"dev-channel","color":"#777777","arch":1,"application_id":"` + app + `","package_id":"` + pkg + `"}`)},
		{"10-omaha", "POST", "/v1/update/", "text/xml", transcript(t, "10-omaha.request.xml")},
		{"11-list-packages", "GET", "/api/apps/" + app + "/packages?searchVersion=9999.1.0&perpage=10", "", nil},
		{"12-get-package", "GET", "/api/apps/" + app + "/packages/" + pkg, "", nil},
	}
	for _, st := range steps {
		req, err := http.NewRequest(st.method, s.URL+st.path, bytes.NewReader(st.body))
		if err != nil {
			t.Fatal(err)
		}
		if st.ctype != "" {
			req.Header.Set("Content-Type", st.ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		got.ReadFrom(resp.Body)
		resp.Body.Close()
		if st.name == "setup-channel" {
			if resp.StatusCode != 200 {
				t.Fatalf("setup: %d %s", resp.StatusCode, got.Bytes())
			}
			continue
		}
		want := 200 // 07 was recorded as a body only, after a 200
		if b, err := os.ReadFile(filepath.Join("testdata/transcripts", st.name+".status")); err == nil {
			want, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if resp.StatusCode != want {
			t.Errorf("%s: status %d, recorded %d", st.name, resp.StatusCode, want)
		}
		if wantBody := transcript(t, st.name+".body"); !bytes.Equal(got.Bytes(), wantBody) {
			t.Errorf("%s: body differs from the recording\n got: %.400s\nwant: %.400s", st.name, got.Bytes(), wantBody)
		}
		if _, err := os.Stat(filepath.Join("testdata/transcripts", st.name+".headers")); err != nil {
			continue // 07 was recorded without headers
		}
		hdr := recordedHeaders(t, st.name+".headers")
		for _, k := range []string{"Content-Type", "Vary"} {
			if g, w := strings.Join(resp.Header.Values(k), ","), strings.Join(hdr.Values(k), ","); g != w {
				t.Errorf("%s: %s %q, recorded %q", st.name, k, g, w)
			}
		}
		for _, k := range []string{"X-Request-Id", "Date"} {
			if len(resp.Header.Get(k)) != len(hdr.Get(k)) {
				t.Errorf("%s: %s %q, recorded %q", st.name, k, resp.Header.Get(k), hdr.Get(k))
			}
		}
		chunked := len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
		if wantChunked := hdr.Get("Transfer-Encoding") == "chunked"; chunked != wantChunked {
			t.Errorf("%s: chunked %v, recorded %v", st.name, chunked, wantChunked)
		}
		if cl := hdr.Get("Content-Length"); cl != "" && strconv.FormatInt(resp.ContentLength, 10) != cl {
			t.Errorf("%s: Content-Length %d, recorded %s", st.name, resp.ContentLength, cl)
		}
	}
}

// The behaviour notes that go beyond the recordings' bodies.
func TestQuirks(t *testing.T) {
	s := Start(t)
	dir := t.TempDir()
	s.PackagesDir = dir
	os.WriteFile(filepath.Join(dir, "a.gz"), []byte("hello"), 0o644)
	get := func(method, path, ctype, body string) (int, string) {
		req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if c, b := get("GET", "/flatcar/missing.gz", "", ""); c != 200 || b != "" {
		t.Errorf("missing file: %d %q, want 200 and an empty body", c, b)
	}
	if c, _ := get("HEAD", "/flatcar/a.gz", "", ""); c != 405 {
		t.Errorf("HEAD: %d, want 405", c)
	}
	if c, b := get("GET", "/flatcar/a.gz", "", ""); c != 200 || b != "hello" {
		t.Errorf("file: %d %q", c, b)
	}
	base := "/api/apps/" + app
	body := `{"application_id":"` + app + `","arch":1,"type":1,"version":"9999.1","url":"u","filename":"f","description":"d","size":"1","hash":"h","channels_blacklist":[]}`
	if c, b := get("POST", base+"/packages", "application/json", body); c != 500 || b != "" {
		t.Errorf("non-semver: %d %q, want 500 with an empty body", c, b)
	}
	if c, b := get("POST", base+"/packages", "application/json", strings.Replace(body, `"size":"1"`, `"size":1`, 1)); c != 400 || !strings.Contains(b, `\"/size\": value must be a string`) {
		t.Errorf("size as a number: %d %q, want 400", c, b)
	}
	if c, _ := get("POST", base+"/packages", "text/plain", body); c != 400 {
		t.Errorf("text/plain: %d, want 400", c)
	}
	// PUT without package_id unpublishes.
	alpha := "a87a03ad-4984-47a1-8dc4-3507bae91ee1"
	if c, b := get("PUT", base+"/channels/"+alpha, "application/json", `{"name":"alpha","color":"#1fbb86","arch":1,"application_id":"`+app+`"}`); c != 200 || !strings.Contains(b, `"package_id":null`) {
		t.Errorf("PUT without package_id: %d %s", c, b)
	}
	// A package of the other arch is refused with an empty 500.
	arm := "0c2635c7-4ef8-4e4b-b768-6292508f9700" // 2261.0.0, amd64
	if c, b := get("PUT", base+"/channels/def12ce0-3ba4-4649-b290-8843f3b455eb", "application/json", `{"name":"alpha","color":"#1fa2bb","arch":2,"application_id":"`+app+`","package_id":"`+arm+`"}`); c != 500 || b != "" {
		t.Errorf("arch mismatch: %d %q", c, b)
	}
	s.Token, s.ViewerToken = "admin-secret", "viewer-secret"
	if c, _ := get("GET", base, "", ""); c != 401 {
		t.Errorf("no token: %d, want 401", c)
	}
	req, _ := http.NewRequest("POST", s.URL+base+"/packages", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer viewer-secret")
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("viewer POST: %v %v, want 403", resp.StatusCode, err)
	}
	if c, _ := get("POST", "/v1/update", "text/xml", string(transcript(t, "10-omaha.request.xml"))); c != 200 {
		t.Errorf("Omaha without a token: %d, want 200", c)
	}
}
