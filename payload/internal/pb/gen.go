// Package pb holds the generated protobuf code for the CrAU v1 manifest.
//
// The schema is written from the client's update_metadata.proto; regenerate
// with `go generate ./payload/internal/pb` (needs protoc and protoc-gen-go at
// the version in go.mod). TestGeneratedIsFresh checks that the committed code
// matches the schema.
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative update_metadata.proto
