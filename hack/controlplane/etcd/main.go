// Command etcd is upstream etcd's server entry point, built from go.etcd.io/etcd/server/v3
// at the version the pinned Kubernetes release uses for its etcd client.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
