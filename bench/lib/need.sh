# need COMMAND [DEBIAN_PACKAGE]: makes sure COMMAND is on the PATH,
# installing the package with apt-get (as root, or through sudo) when it is
# missing, so that every bench script runs on a fresh machine. Source it.
need() {
	command -v "$1" >/dev/null && return 0
	local pkg=${2:-$1} sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	echo "== installing $pkg (apt-get)"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$pkg" >/dev/null 2>&1 ||
		{ $sudo apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$pkg" >/dev/null 2>&1; }
	command -v "$1" >/dev/null || { echo "bench: $1 is missing and apt-get could not install $pkg"; exit 1; }
}

# need_go_build NAME PACKAGE VERSION: builds a peer's Go program from its
# module at VERSION (go get PACKAGE@VERSION in a scratch module, then go
# build), once, into a cache, and prints the binary's path. It is how the
# benches get anchors that Debian does not package (etcd, natscli) at their
# newest version that builds here.
need_go_build() {
	local name=$1 pkg=$2 version=$3
	local cache=${XDG_CACHE_HOME:-$HOME/.cache}/scalelab-bench/$name-$version
	if [ ! -x "$cache/$name" ]; then
		echo "== building $name $version from its Go module (once; cached in $cache)" >&2
		local mod
		mod=$(mktemp -d)
		if ! (cd "$mod" && go mod init "${name}build" >/dev/null 2>&1 &&
			go get "$pkg@$version" >/dev/null 2>&1 &&
			mkdir -p "$cache" && go build -o "$cache/$name" "$pkg"); then
			rm -rf "$mod"
			echo "bench: building $name $version failed" >&2
			return 1
		fi
		rm -rf "$mod"
	fi
	echo "$cache/$name"
}
