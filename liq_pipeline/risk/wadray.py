"""Aave's fixed-point arithmetic on Python integers, bit for bit.

Sources: aave-v3-core `WadRayMath.sol`, `PercentageMath.sol`, `MathUtils.sol` (V3.0) and aave-v3-origin's
`WadRayMath.sol` / `TokenMath.sol` / `MathUtils.mulDivCeil` (V3.5+ floor/ceil variants). Python integers do not
overflow, so an input the contract would revert on (a product above 2**256) is reported instead of wrapped.
"""

from __future__ import annotations

WAD = 10**18
HALF_WAD = WAD // 2
RAY = 10**27
HALF_RAY = RAY // 2
PERCENTAGE_FACTOR = 10_000
HALF_PERCENTAGE_FACTOR = PERCENTAGE_FACTOR // 2
SECONDS_PER_YEAR = 365 * 24 * 3600
UINT256_MAX = 2**256 - 1


def _check(value: int) -> int:
    if value > UINT256_MAX:
        raise OverflowError("intermediate value exceeds uint256: the contract would revert")
    return value


def ray_mul(a: int, b: int) -> int:
    """a*b/RAY rounded half up (WadRayMath.rayMul)."""
    return _check(a * b + HALF_RAY) // RAY


def ray_mul_floor(a: int, b: int) -> int:
    """a*b/RAY rounded down (V3.5 rayMulFloor, used for aToken balances)."""
    return _check(a * b) // RAY


def ray_mul_ceil(a: int, b: int) -> int:
    """a*b/RAY rounded up (V3.5 rayMulCeil, used for variable debt balances)."""
    return -(-_check(a * b) // RAY)


def wad_div(a: int, b: int) -> int:
    """a*WAD/b rounded half up (WadRayMath.wadDiv)."""
    if b == 0:
        raise ZeroDivisionError("wadDiv by zero: the contract would revert")
    return _check(a * WAD + b // 2) // b


def percent_mul(value: int, percentage: int) -> int:
    """value*percentage/1e4 rounded half up (PercentageMath.percentMul)."""
    return _check(value * percentage + HALF_PERCENTAGE_FACTOR) // PERCENTAGE_FACTOR


def percent_div(value: int, percentage: int) -> int:
    """value*1e4/percentage rounded half up (PercentageMath.percentDiv)."""
    if percentage == 0:
        raise ZeroDivisionError("percentDiv by zero: the contract would revert")
    return _check(value * PERCENTAGE_FACTOR + percentage // 2) // percentage


def mul_div_ceil(a: int, b: int, c: int) -> int:
    """a*b/c rounded up (MathUtils.mulDivCeil, V3.5+)."""
    if c == 0:
        raise ZeroDivisionError("mulDivCeil by zero: the contract would revert")
    return -(-_check(a * b) // c)


def ray_div(a: int, b: int) -> int:
    """a*RAY/b rounded half up (WadRayMath.rayDiv)."""
    if b == 0:
        raise ZeroDivisionError("rayDiv by zero: the contract would revert")
    return _check(a * RAY + b // 2) // b


def ray_div_floor(a: int, b: int) -> int:
    """a*RAY/b rounded down (V3.5 rayDivFloor: aToken mint, vToken burn)."""
    if b == 0:
        raise ZeroDivisionError("rayDivFloor by zero: the contract would revert")
    return _check(a * RAY) // b


def ray_div_ceil(a: int, b: int) -> int:
    """a*RAY/b rounded up (V3.5 rayDivCeil: aToken burn and transfer, vToken mint)."""
    if b == 0:
        raise ZeroDivisionError("rayDivCeil by zero: the contract would revert")
    return -(-_check(a * RAY) // b)


def percent_mul_floor(value: int, percentage: int) -> int:
    """value*percentage/1e4 rounded down (PercentageMath.percentMulFloor, V3.5+)."""
    return _check(value * percentage) // PERCENTAGE_FACTOR


def percent_mul_ceil(value: int, percentage: int) -> int:
    """value*percentage/1e4 rounded up (PercentageMath.percentMulCeil, V3.5+)."""
    return -(-_check(value * percentage) // PERCENTAGE_FACTOR)


def percent_div_floor(value: int, percentage: int) -> int:
    """value*1e4/percentage rounded down (PercentageMath.percentDivFloor, V3.7)."""
    if percentage == 0:
        raise ZeroDivisionError("percentDivFloor by zero: the contract would revert")
    return _check(value * PERCENTAGE_FACTOR) // percentage


def percent_div_ceil(value: int, percentage: int) -> int:
    """value*1e4/percentage rounded up (PercentageMath.percentDivCeil, V3.5+)."""
    if percentage == 0:
        raise ZeroDivisionError("percentDivCeil by zero: the contract would revert")
    return -(-_check(value * PERCENTAGE_FACTOR) // percentage)
