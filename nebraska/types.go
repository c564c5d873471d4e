// Package nebraska is a client for the admin API of Nebraska, Flatcar's
// Omaha update service: the few calls a push needs (find and create a
// package, read and point a channel, read the groups that route clients to
// it), with the server's recorded quirks handled in one place.
//
// The types below mirror the JSON Nebraska writes, field for field and in
// its order, so that the test server in nebraskatest can reproduce the
// recorded responses byte for byte from the same definitions.
package nebraska

// FlatcarAppID is the application id Flatcar's clients send.
const FlatcarAppID = "e96281a6-d1af-4bde-9a0a-97b76e56dc57"

// PackageTypeFlatcar is the only package type that gets the postinstall
// action update_engine requires.
const PackageTypeFlatcar = 1

// Arch values (Nebraska's types.Arch).
const (
	ArchAll   = 0
	ArchAMD64 = 1
	ArchARM64 = 2
)

// ArchForBoard maps a Flatcar board to Nebraska's arch (0 if unknown).
func ArchForBoard(board string) int {
	switch board {
	case "amd64-usr":
		return ArchAMD64
	case "arm64-usr":
		return ArchARM64
	}
	return 0
}

// Package is a stored package.
type Package struct {
	ID                string         `json:"id"`
	Type              int            `json:"type"`
	Version           string         `json:"version"`
	URL               string         `json:"url"`
	Filename          string         `json:"filename"`
	Description       string         `json:"description"`
	Size              string         `json:"size"`
	Hash              string         `json:"hash"`
	CreatedTS         string         `json:"created_ts"`
	ChannelsBlacklist []string       `json:"channels_blacklist"`
	ApplicationID     string         `json:"application_id"`
	FlatcarAction     *FlatcarAction `json:"flatcar_action"`
	Arch              int            `json:"arch"`
	ExtraFiles        []ExtraFile    `json:"extra_files"`
	// IsFloor and FloorReason are set in a channel's list of floors.
	IsFloor     bool    `json:"is_floor,omitempty"`
	FloorReason *string `json:"floor_reason"`
}

// FlatcarAction is the postinstall action of a type-1 package.
type FlatcarAction struct {
	ID                    string `json:"id"`
	Event                 string `json:"event"`
	ChromeOSVersion       string `json:"chromeos_version"`
	SHA256                string `json:"sha256"`
	NeedsAdmin            bool   `json:"needs_admin"`
	IsDelta               bool   `json:"is_delta"`
	DisablePayloadBackoff bool   `json:"disable_payload_backoff"`
	MetadataSignatureRSA  string `json:"metadata_signature_rsa"`
	MetadataSize          string `json:"metadata_size"`
	Deadline              string `json:"deadline"`
	CreatedTS             string `json:"created_ts"`
}

// ExtraFile is a file served next to the payload (OEM and sysext images).
type ExtraFile struct {
	ID        int    `json:"id"`
	PackageID string `json:"package_id"`
	Name      string `json:"name"`
	Size      string `json:"size"`
	Hash      string `json:"hash"`
	Hash256   string `json:"hash256"`
	CreatedTS string `json:"created_ts"`
}

// Channel is a channel with the package it serves (nil when none).
type Channel struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	Color         string   `json:"color"`
	CreatedTS     string   `json:"created_ts"`
	ApplicationID string   `json:"application_id"`
	PackageID     *string  `json:"package_id"`
	Package       *Package `json:"package"`
	Arch          int      `json:"arch"`
}

// Group routes clients whose track matches to a channel.
type Group struct {
	ID                        string   `json:"id"`
	Name                      string   `json:"name"`
	Description               string   `json:"description"`
	CreatedTS                 string   `json:"created_ts"`
	RolloutInProgress         bool     `json:"rollout_in_progress"`
	ApplicationID             string   `json:"application_id"`
	ChannelID                 *string  `json:"channel_id"`
	PolicyUpdatesEnabled      bool     `json:"policy_updates_enabled"`
	PolicySafeMode            bool     `json:"policy_safe_mode"`
	PolicyOfficeHours         bool     `json:"policy_office_hours"`
	PolicyTimezone            string   `json:"policy_timezone"`
	PolicyPeriodInterval      string   `json:"policy_period_interval"`
	PolicyMaxUpdatesPerPeriod int      `json:"policy_max_updates_per_period"`
	PolicyUpdateTimeout       string   `json:"policy_update_timeout"`
	Channel                   *Channel `json:"channel"`
	Track                     string   `json:"track"`
}

// App is an application with its groups and channels.
type App struct {
	ID          string    `json:"id"`
	ProductID   *string   `json:"product_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedTS   string    `json:"created_ts"`
	Groups      []Group   `json:"groups"`
	Channels    []Channel `json:"channels"`
	Instances   Instances `json:"instances"`
}

// Instances is the instance count an app carries.
type Instances struct {
	Count int `json:"count"`
}

// PackageConfig is the body of a package create (packageConfig in
// Nebraska's OpenAPI spec). ChannelsBlacklist must be sent, even empty.
type PackageConfig struct {
	ApplicationID     string             `json:"application_id"`
	Arch              int                `json:"arch"`
	Type              int                `json:"type"`
	Version           string             `json:"version"`
	URL               string             `json:"url"`
	Filename          string             `json:"filename"`
	Description       string             `json:"description"`
	Size              string             `json:"size"`
	Hash              string             `json:"hash"`
	ChannelsBlacklist []string           `json:"channels_blacklist"`
	FlatcarAction     *FlatcarActionConf `json:"flatcar_action,omitempty"`
	ExtraFiles        []ExtraFileConf    `json:"extra_files,omitempty"`
}

// FlatcarActionConf carries the payload's SHA-256 (base64).
type FlatcarActionConf struct {
	SHA256 string `json:"sha256"`
}

// ExtraFileConf describes an extra file; Hash is SHA-1 base64, Hash256 is
// SHA-256 hex.
type ExtraFileConf struct {
	Name    string `json:"name"`
	Size    string `json:"size"`
	Hash    string `json:"hash"`
	Hash256 string `json:"hash256"`
}

// ChannelConfig is the body of a channel PUT (channelConfig). PUT replaces
// the channel: a missing PackageID unpublishes it.
type ChannelConfig struct {
	Name          string  `json:"name"`
	Color         string  `json:"color"`
	Arch          int     `json:"arch"`
	ApplicationID string  `json:"application_id"`
	PackageID     *string `json:"package_id,omitempty"`
}

// GroupConfig is the body of a group create (an admin's one-time setup).
type GroupConfig struct {
	Name                      string `json:"name"`
	Description               string `json:"description"`
	ChannelID                 string `json:"channel_id"`
	Track                     string `json:"track"`
	PolicyUpdatesEnabled      bool   `json:"policy_updates_enabled"`
	PolicySafeMode            bool   `json:"policy_safe_mode"`
	PolicyOfficeHours         bool   `json:"policy_office_hours"`
	PolicyTimezone            string `json:"policy_timezone"`
	PolicyPeriodInterval      string `json:"policy_period_interval"`
	PolicyMaxUpdatesPerPeriod int    `json:"policy_max_updates_per_period"`
	PolicyUpdateTimeout       string `json:"policy_update_timeout"`
}
