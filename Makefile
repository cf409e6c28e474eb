# Thin wrapper over cargo xtask (see xtask/src/main.rs).
.PHONY: run test setup kernel image vm deb clean

run:            ## main job: two VMs, both nodes up, links and statistics
	cargo xtask run
test:           ## every test; last line is the summary
	cargo xtask test
setup:          ## install host packages, rust-src and bindgen
	cargo xtask setup
kernel:
	cargo xtask kernel
image:
	cargo xtask image
vm:
	cargo xtask vm
deb:
	cargo xtask deb
clean:
	rm -rf out target
