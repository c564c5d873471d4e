// Package omaha writes the update check a Flatcar client sends and reads
// the answer the way update_engine's omaha_request_action.cc does (read.go),
// so that a push can ask the update service, as a client would, what it
// really serves, and refuse an answer a client would read otherwise.
package omaha

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
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

// JoinURL joins a codebase and a file name as clients do.
func JoinURL(codebase, name string) string {
	if !strings.HasSuffix(codebase, "/") {
		codebase += "/"
	}
	return codebase + name
}
