"""The scheduler: groups the lazy graph under the buffers to realize into kernels (fusing what it can) and copies."""
