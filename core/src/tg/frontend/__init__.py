"""The front end: Tensor, its differentiable primitives (autograd functions), indexing and neural-network ops."""
