module github.com/augen-project/augen

go 1.26

require (
	github.com/dsnet/compress v0.0.1
	google.golang.org/protobuf v1.36.12
)
