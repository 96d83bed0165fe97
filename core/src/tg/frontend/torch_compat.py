"""PyTorch's smaller Tensor methods, so a port never has to guess a name: ``new_zeros``, ``t()``, ``cpu()``,
``eq``/``lt``..., ``index_select``, ``narrow``, ``unbind``, ``repeat_interleave``, ``type_as``, ``view_as``,
``type()``...

Each is the tg spelling of the same computation (``x.eq(y)`` is ``x == y``); methods about storage answer for
tg's model, where a tensor is a value, not memory (``is_contiguous()`` says whether it is a plain row-major
value rather than a pending view).
"""

# mypy: disable-error-code="misc"
# (mixin methods annotate self as Tensor, their only subclass; mypy wants a supertype there)
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tg.support.dtype import BY_NAME, DType, dtypes

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor


class TorchCompatMixin:
    """PyTorch's small Tensor methods (mixed into :class:`~tg.frontend.tensor.Tensor`)."""

    __slots__ = ()

    # -- new tensors like this one ---------------------------------------------------------------------------

    def _new(self: Tensor, size: Any, fill: Any, dtype: DType | str | None, device: str | None,
             requires_grad: bool) -> Tensor:
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
        return type(self).full(shape, fill, dtype=dtype or self.dtype, device=device or self.device,
                               requires_grad=requires_grad)

    def new_zeros(self: Tensor, *size: Any, dtype: DType | str | None = None, device: str | None = None,
                  requires_grad: bool = False) -> Tensor:
        return self._new(size, 0, dtype, device, requires_grad)

    def new_ones(self: Tensor, *size: Any, dtype: DType | str | None = None, device: str | None = None,
                 requires_grad: bool = False) -> Tensor:
        return self._new(size, 1, dtype, device, requires_grad)

    def new_empty(self: Tensor, *size: Any, dtype: DType | str | None = None, device: str | None = None,
                  requires_grad: bool = False) -> Tensor:
        return self._new(size, 0, dtype, device, requires_grad)

    def new_full(self: Tensor, size: Any, fill_value: Any, dtype: DType | str | None = None,
                 device: str | None = None, requires_grad: bool = False) -> Tensor:
        return self._new((size,), fill_value, dtype, device, requires_grad)

    def new_tensor(self: Tensor, data: Any, dtype: DType | str | None = None, device: str | None = None,
                   requires_grad: bool = False) -> Tensor:
        return type(self)(data, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)

    # -- shape and type like another -------------------------------------------------------------------------

    def type_as(self: Tensor, other: Tensor) -> Tensor:
        return self.cast(other.dtype)

    def view_as(self: Tensor, other: Tensor) -> Tensor:
        return self.reshape(other.shape)

    def reshape_as(self: Tensor, other: Tensor) -> Tensor:
        return self.reshape(other.shape)

    def expand_as(self: Tensor, other: Tensor) -> Tensor:
        return self.expand(*other.shape)

    def t(self: Tensor) -> Tensor:
        """The transpose of a matrix (a vector or a scalar as it is), as ``torch.t``."""
        if self.ndim > 2:
            raise ValueError(f"t() expects a tensor with at most 2 dimensions, this one has {self.ndim}: use "
                             "transpose(dim0, dim1) or mT")
        return self.transpose(0, 1) if self.ndim == 2 else self

    @property
    def mT(self: Tensor) -> Tensor:  # noqa: N802 - PyTorch's name
        """The last two dimensions swapped (a batch of matrices transposed)."""
        if self.ndim < 2:
            raise ValueError(f"mT needs at least 2 dimensions, this tensor has {self.ndim}")
        return self.transpose(-2, -1)

    # -- devices ---------------------------------------------------------------------------------------------

    def cpu(self: Tensor) -> Tensor:
        """This tensor on the CPU backend (``clang`` where it runs, else ``numpy``), as ``.to("cpu")``."""
        return self.to("cpu")

    def cuda(self: Tensor, device: int | str | None = None) -> Tensor:
        """This tensor on the NVIDIA GPU (the ``ptx`` backend), as ``.to("cuda")``."""
        name = "cuda" if device is None else device if isinstance(device, str) else f"cuda:{device}"
        return self.to(name)

    # -- sizes -----------------------------------------------------------------------------------------------

    def nelement(self: Tensor) -> int:
        return self.numel()

    def element_size(self: Tensor) -> int:
        return self.dtype.itemsize

    def is_contiguous(self: Tensor) -> bool:
        """Whether this tensor's value is a plain row-major array, not a pending view (a transpose, a slice)."""
        lb = self.lazydata
        return not lb.is_view or bool(lb.st.is_contiguous)

    @property
    def is_leaf(self: Tensor) -> bool:
        """True for tensors autograd did not compute (inputs, parameters), as in PyTorch."""
        return self._ctx is None

    # -- comparisons and logic by name -------------------------------------------------------------------------

    def eq(self: Tensor, other: Any) -> Tensor:
        return self == other

    def ne(self: Tensor, other: Any) -> Tensor:
        return self != other

    def lt(self: Tensor, other: Any) -> Tensor:
        return self < other

    def le(self: Tensor, other: Any) -> Tensor:
        return self <= other

    def gt(self: Tensor, other: Any) -> Tensor:
        return self > other

    def ge(self: Tensor, other: Any) -> Tensor:
        return self >= other

    def logical_and(self: Tensor, other: Any) -> Tensor:
        return self.cast(dtypes.bool) & _as_bool(self, other)

    def logical_or(self: Tensor, other: Any) -> Tensor:
        return self.cast(dtypes.bool) | _as_bool(self, other)

    def logical_xor(self: Tensor, other: Any) -> Tensor:
        return self.cast(dtypes.bool) ^ _as_bool(self, other)

    def mm(self: Tensor, mat2: Tensor) -> Tensor:
        if self.ndim != 2 or mat2.ndim != 2:
            raise ValueError(f"mm multiplies two matrices, got {self.ndim}-D and {mat2.ndim}-D tensors: use matmul")
        return self.matmul(mat2)

    # -- selecting ---------------------------------------------------------------------------------------------

    def index_select(self: Tensor, dim: int, index: Tensor) -> Tensor:
        """The entries at ``index`` (a 1-D integer tensor) along ``dim``; an index out of range raises at the next
        read, as tensor indexing does."""
        if index.ndim != 1:
            raise ValueError(f"index_select needs a 1-D index, got shape {index.shape}")
        d = dim % self.ndim
        return self[(slice(None),) * d + (index,)]

    def narrow(self: Tensor, dim: int, start: int, length: int) -> Tensor:
        d, size = dim % self.ndim, self.shape[dim % self.ndim]
        begin = start % size if start < 0 else start
        if begin < 0 or length < 0 or begin + length > size:
            raise IndexError(f"narrow: start {start} and length {length} do not fit dimension {dim} of size {size}")
        return self[(slice(None),) * d + (slice(begin, begin + length),)]

    def unbind(self: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
        d = dim % self.ndim
        return tuple(self[(slice(None),) * d + (i,)] for i in range(self.shape[d]))

    def repeat_interleave(self: Tensor, repeats: int, dim: int | None = None) -> Tensor:
        """Each element repeated ``repeats`` times along ``dim`` (the flattened tensor when ``dim`` is None)."""
        if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 0:
            raise TypeError(f"repeat_interleave takes a non-negative int number of repeats in tg, not {repeats!r} "
                            "(a tensor of per-element repeats is not supported)")
        x = self.flatten() if dim is None else self
        d = 0 if dim is None else dim % x.ndim
        shape = x.shape
        grown = x.unsqueeze(d + 1).expand(*shape[:d + 1], repeats, *shape[d + 1:])
        return grown.reshape(*shape[:d], shape[d] * repeats, *shape[d + 1:])


    # -- type names (last in the class: the method's name would shadow the builtin type in annotations above) ------

    def type(self: Tensor, dtype: DType | str | None = None, non_blocking: bool = False) -> Any:
        """PyTorch's type name of this tensor (``"tg.FloatTensor"``...: see :data:`TYPE_NAMES`), or, given a dtype,
        this tensor cast to it (itself when it has that dtype already).

        The name tells the dtype only, whatever the backend (PyTorch's ``torch.cuda.FloatTensor`` has no tg
        counterpart: the backend is ``.device``).  ``dtype`` is a tg dtype (``tg.float16``), a dtype name
        (``"float16"``), or a type name with either prefix (``"tg.HalfTensor"``, ``"torch.HalfTensor"``, so a ported
        line keeps working).  ``non_blocking`` is accepted and has no effect (tg's copies are lazy anyway)."""
        if dtype is None:
            return "tg." + TYPE_NAMES[self.dtype.name]
        return self.cast(_type_arg(dtype))


#: PyTorch's tensor type names of tg's dtypes (``x.type()`` is ``"tg."`` and the name).
TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor", "uint8": "ByteTensor",
              "int8": "CharTensor", "int32": "IntTensor", "int64": "LongTensor", "bool": "BoolTensor"}
_DTYPE_OF_TYPE = {name: dtype for dtype, name in TYPE_NAMES.items()}


def _type_arg(dtype: Any) -> DType:
    """The dtype that ``Tensor.type(dtype)`` means (see there)."""
    if isinstance(dtype, DType):
        return dtype
    if not isinstance(dtype, str):
        raise TypeError(f"type() takes a tg dtype or a name such as 'tg.FloatTensor' or 'float32', got "
                        f"{type(dtype).__name__} {dtype!r}")
    prefix, _, name = dtype.rpartition(".")
    if prefix in ("tg", "torch") and name in _DTYPE_OF_TYPE:
        return dtypes.from_any(_DTYPE_OF_TYPE[name])
    if prefix in ("tg.cuda", "torch.cuda") and name in _DTYPE_OF_TYPE:
        raise ValueError(f"type({dtype!r}) would also move the tensor to the GPU: in tg write "
                         f".to('cuda').type('tg.{name}')")
    if not prefix and dtype in BY_NAME:
        return BY_NAME[dtype]
    raise TypeError(f"type({dtype!r}): not a type tg knows; use one of "
                    f"{', '.join('tg.' + n for n in TYPE_NAMES.values())} (or the 'torch.' spelling), or a dtype "
                    f"name ({', '.join(BY_NAME)})")


def _as_bool(like: Tensor, other: Any) -> Tensor:
    return (other if isinstance(other, type(like)) else type(like)(other, device=like.device)).cast(dtypes.bool)
