package push

import (
	"context"
	"errors"
	"strings"

	"github.com/augen-project/augen/nebraska"
)

// Group is a group of the update service that routes clients to a
// channel.
type Group struct {
	Name           string `json:"name"`
	Track          string `json:"track"`
	UpdatesEnabled bool   `json:"updates_enabled"`
}

// ChannelStatus is what a channel serves now, as "augen push status"
// shows it; its JSON is that command's --json output.
type ChannelStatus struct {
	Channel string            `json:"channel"`
	ID      string            `json:"id"`
	Arch    int               `json:"arch"`
	Package *nebraska.Package `json:"package"`
	// URL is where clients download the package's payload.
	URL    string      `json:"url,omitempty"`
	Floors []FloorInfo `json:"floors"`
	// FloorsSupported is false for a server without multi-step updates.
	FloorsSupported bool    `json:"floors_supported"`
	Groups          []Group `json:"groups"`
	// Verified is what downloading and verifying the served files found
	// (push status --verify: VerifyServed).
	Verified []ServedCheck `json:"verified,omitempty"`
}

// Status reads what the channel ch of app serves: its package, its floors
// (none on a server without multi-step updates) and the groups that route
// clients to it.
func Status(ctx context.Context, c *nebraska.Client, app string, ch *nebraska.Channel) (*ChannelStatus, error) {
	a, err := c.App(ctx, app)
	if err != nil {
		return nil, err
	}
	floors, err := c.Floors(ctx, ch.ID)
	if err != nil && !errors.Is(err, nebraska.ErrNoFloors) {
		return nil, err
	}
	out := &ChannelStatus{Channel: ch.Name, ID: ch.ID, Arch: ch.Arch, Package: ch.Package, Groups: []Group{},
		Floors: FloorsOf(floors), FloorsSupported: err == nil}
	for _, g := range a.Groups {
		if g.ChannelID != nil && *g.ChannelID == ch.ID {
			out.Groups = append(out.Groups, Group{g.Name, g.Track, g.PolicyUpdatesEnabled})
		}
	}
	if p := ch.Package; p != nil {
		out.URL = strings.TrimSuffix(p.URL, "/") + "/" + p.Filename
	}
	return out, nil
}
