module github.com/augen-project/augen

go 1.26

require (
	github.com/dsnet/compress v0.0.1
	github.com/spf13/pflag v1.1.0
	google.golang.org/protobuf v1.36.12
)
