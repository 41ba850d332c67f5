// Package blob is scalelab's object store block: whole objects (album
// covers, uploads) written once under a key and read back whole or by byte
// range, on two engines chosen by URL.
//
//	"" or file://DIR   a local directory (default DATA/blobs)
//	s3://BUCKET?endpoint=http://host:port[&region=…][&path_style=false]
//	                   AWS S3 or any S3-compatible server (MinIO, Ceph, R2 …)
//
// Both engines keep one promise that matters to a service built on them: an
// object appears whole or not at all. Put checks that the reader yields
// exactly the declared size (ErrSize otherwise) and that the request was not
// cancelled, before the object becomes visible; a failed Put leaves the
// previous object under the key as it was. Locally that is a temporary file,
// fsync, rename and a directory fsync; on S3 it is S3's own atomic PUT of a
// body spooled first (in memory up to 8 MiB), so that its size is known,
// the request is signed over its payload, and the SDK can retry it.
//
// Open returns an Object: an io.ReadSeekCloser with the object's Info (size,
// content type, strong ETag, modification time), which is exactly what
// http.ServeContent needs to answer Range, If-None-Match and
// If-Modified-Since requests. On S3 the reader issues one ranged GET from
// wherever it was sought to, conditioned on the ETag seen when it was
// opened, so a Range request fetches only what it needs and an object
// replaced during a read is an error rather than a mix of two versions.
//
// Keys are path segments of letters, digits and "._-" separated by "/"
// (CheckKey): safe as file paths and S3 keys alike. One difference between
// the engines remains: locally a key cannot also be the "directory" of
// another ("a" and "a/b"); S3 allows both. Services here use disjoint keys.
//
// One contract suite (blob_test.go) runs against both engines; the S3
// engine runs it against gofakes3, a real S3-protocol server, on loopback.
package blob
