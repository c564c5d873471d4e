// Package omaha writes the update check a Flatcar client sends and reads
// the answer the way update_engine and ue-rs do, so that a push can ask
// the update service, as a client would, what it really serves.
package omaha

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MaxResponse bounds a response read into memory.
const MaxResponse = 1 << 20

// ErrResponse is wrapped by every problem with a response.
var ErrResponse = errors.New("omaha: bad response")

// ProbeMachineID marks the instance a probe registers in the server's
// statistics, so that nobody mistakes it for a machine.
const ProbeMachineID = "a09e0000000000000000000000000000"

// Request is one client's update check.
type Request struct {
	AppID   string // without braces
	Version string // the version the client claims to run
	Track   string // GROUP= in update.conf: the channel's track
	Board   string // amd64-usr or arm64-usr
	// MachineID defaults to ProbeMachineID.
	MachineID string
}

// Marshal writes the request as update_engine does (protocol 3.0).
func (r Request) Marshal() []byte {
	mid := r.MachineID
	if mid == "" {
		mid = ProbeMachineID
	}
	arch := "x86_64"
	if r.Board == "arm64-usr" {
		arch = "aarch64"
	}
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<request protocol="3.0" version="update_engine-0.4.10" updaterversion="update_engine-0.4.10" installsource="scheduler" ismachine="1">` + "\n")
	fmt.Fprintf(&b, ` <os version="Chateau" platform="CoreOS" sp="%s_%s"></os>`+"\n", Attr(r.Version), arch)
	fmt.Fprintf(&b, ` <app appid="{%s}" version="%s" track="%s" bootid="{%s}" oem="" oemversion="" alephversion="%s" machineid="%s" lang="en-US" board="%s" hardware_class="" delta_okay="false">`+"\n",
		Attr(r.AppID), Attr(r.Version), Attr(r.Track), "00000000-0000-0000-0000-000000000000", Attr(r.Version), Attr(mid), Attr(r.Board))
	b.WriteString("  <updatecheck></updatecheck>\n </app>\n</request>\n")
	return b.Bytes()
}

// Attr escapes s for an XML attribute value in double quotes (quotes
// included), as both ends of the protocol write them.
func Attr(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// Response is the part of an answer clients read.
type Response struct {
	XMLName  xml.Name `xml:"response"`
	Protocol string   `xml:"protocol,attr"`
	Server   string   `xml:"server,attr"`
	Apps     []App    `xml:"app"`
}

// App is one application's answer.
type App struct {
	AppID       string       `xml:"appid,attr"`
	Status      string       `xml:"status,attr"`
	UpdateCheck *UpdateCheck `xml:"updatecheck"`
}

// UpdateCheck says whether, and what, to update.
type UpdateCheck struct {
	Status   string    `xml:"status,attr"`
	URLs     []URL     `xml:"urls>url"`
	Manifest *Manifest `xml:"manifest"`
}

// URL is a base URL the packages are downloaded from.
type URL struct {
	Codebase string `xml:"codebase,attr"`
}

// Manifest lists the packages of one version and their actions.
type Manifest struct {
	Version  string    `xml:"version,attr"`
	Packages []Package `xml:"packages>package"`
	Actions  []Action  `xml:"actions>action"`
}

// Package is one file: the first is the update payload, the others are
// extra files (hash_sha256 in hex).
type Package struct {
	Name       string `xml:"name,attr"`
	Hash       string `xml:"hash,attr"`
	HashSHA256 string `xml:"hash_sha256,attr"`
	Size       string `xml:"size,attr"`
	Required   string `xml:"required,attr"`
}

// Action is a postinstall action; SHA256 (base64) is what update_engine
// checks the payload against.
type Action struct {
	Event                 string `xml:"event,attr"`
	SHA256                string `xml:"sha256,attr"`
	DisablePayloadBackoff string `xml:"DisablePayloadBackoff,attr"`
}

// Offer is what a client would download: read from a response as
// update_engine does (first package, postinstall sha256).
type Offer struct {
	Version  string
	Codebase string
	Name     string
	Size     int64
	SHA1     string // base64
	SHA256   string // base64, from the postinstall action
	Extra    []Package
}

// Parse reads a response, at most MaxResponse bytes of it.
func Parse(r io.Reader) (*Response, error) {
	raw, err := io.ReadAll(io.LimitReader(r, MaxResponse+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > MaxResponse {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrResponse, MaxResponse)
	}
	var resp Response
	if err := xml.Unmarshal(raw, &resp); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrResponse, err)
	}
	if resp.Protocol != "3.0" {
		return nil, fmt.Errorf("%w: protocol %q, want 3.0", ErrResponse, resp.Protocol)
	}
	return &resp, nil
}

// Offer finds app's update offer. An answer without one (noupdate, an
// error status, no action sha256) is an error that says what was served.
func (r *Response) Offer(appID string) (*Offer, error) {
	var app *App
	for i := range r.Apps {
		if strings.EqualFold(strings.Trim(r.Apps[i].AppID, "{}"), appID) {
			app = &r.Apps[i]
		}
	}
	switch {
	case app == nil:
		return nil, fmt.Errorf("%w: no answer for app %s", ErrResponse, appID)
	case app.Status != "ok":
		return nil, fmt.Errorf("%w: app status %q", ErrResponse, app.Status)
	case app.UpdateCheck == nil:
		return nil, fmt.Errorf("%w: no updatecheck", ErrResponse)
	case app.UpdateCheck.Status != "ok":
		return nil, fmt.Errorf("%w: updatecheck status %q", ErrResponse, app.UpdateCheck.Status)
	}
	uc := app.UpdateCheck
	if len(uc.URLs) == 0 || uc.Manifest == nil || len(uc.Manifest.Packages) == 0 {
		return nil, fmt.Errorf("%w: the update offers no URL or no package", ErrResponse)
	}
	p := uc.Manifest.Packages[0]
	size, err := strconv.ParseInt(p.Size, 10, 64)
	if err != nil || size <= 0 {
		return nil, fmt.Errorf("%w: package size %q", ErrResponse, p.Size)
	}
	o := &Offer{Version: uc.Manifest.Version, Codebase: uc.URLs[0].Codebase, Name: p.Name, Size: size, SHA1: p.Hash, Extra: uc.Manifest.Packages[1:]}
	for _, a := range uc.Manifest.Actions {
		if a.Event == "postinstall" {
			o.SHA256 = a.SHA256
		}
	}
	if o.SHA256 == "" {
		return nil, fmt.Errorf("%w: no postinstall action with a sha256 (update_engine rejects this answer)", ErrResponse)
	}
	return o, nil
}

// URL is where a client downloads the payload from (update_engine adds
// the slash a codebase lacks).
func (o *Offer) URL() string { return JoinURL(o.Codebase, o.Name) }

// JoinURL joins a codebase and a file name as clients do.
func JoinURL(codebase, name string) string {
	if !strings.HasSuffix(codebase, "/") {
		codebase += "/"
	}
	return codebase + name
}
