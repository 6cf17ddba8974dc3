# Container image (Dockerfile at the top of the repository; docs/deploy.md).
#
#   make image         docker build -t signal-manager:$(VERSION) .
#                      IMAGE_NAME=... IMAGE_TAG=... to name it otherwise
#   make image-check   verify the Dockerfile without a container engine
#                      (scripts/check-image.sh): runtime libraries = ldd of
#                      $(BIN), build packages = scripts/deps.sh, and the
#                      image's entrypoint, ENV and HEALTHCHECK run here as
#                      uid 10001; builds the image too when an engine answers
#   make image-check-rootfs  also both stages in Debian 12 chroots (see below)
#
# `make image` needs a reachable engine (`docker info` must succeed); without
# one it stops with a message and builds nothing.

IMAGE_NAME ?= signal-manager
IMAGE_TAG ?= $(VERSION)

.PHONY: image image-check image-check-rootfs

image:
	@command -v docker >/dev/null 2>&1 || { \
	    echo "make image: the docker CLI is not installed; the image was not built." >&2; \
	    exit 1; }
	@timeout 20 docker info >/dev/null 2>&1 || { \
	    echo "make image: no container engine is reachable (\`docker info\` failed):" \
	         "the image was not built." >&2; \
	    echo "  Run \`make image\` where Docker or Podman (docker CLI) runs;" \
	         "\`make image-check\` verifies what can be verified here." >&2; \
	    exit 1; }
	docker build -t $(IMAGE_NAME):$(IMAGE_TAG) .

image-check: $(BIN)
	@SM_BIN=$(CURDIR)/$(BIN) IMAGE_NAME=$(IMAGE_NAME) IMAGE_TAG=$(IMAGE_TAG) \
	    scripts/check-image.sh

# The same, plus both stages carried out RUN by RUN in debootstrap'd Debian 12
# chroots (root, debootstrap, rsync and the Debian mirror; a few minutes).
image-check-rootfs: $(BIN)
	@SM_BIN=$(CURDIR)/$(BIN) IMAGE_NAME=$(IMAGE_NAME) IMAGE_TAG=$(IMAGE_TAG) SM_CHECK_ROOTFS=1 \
	    scripts/check-image.sh
