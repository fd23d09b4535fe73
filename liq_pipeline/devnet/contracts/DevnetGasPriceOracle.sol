// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

/// @title DevnetGasPriceOracle
/// @notice The devnet's stand-in for the OP-stack GasPriceOracle predeploy (0x420000000000000000000000000000000000000F
/// on Base), after Fjord: `getL1Fee(bytes)` and `getL1FeeUpperBound(uint256)` with the same selectors and answers,
/// so the L1 data fee is read on the devnet exactly as on Base. The devnet installs its runtime code at the predeploy
/// address (anvil_setCode) and its inputs with anvil_setStorageAt (devnet/l1_oracle.py): storage slots 0-3 below.
/// @dev The formula, from the OP-stack / Base specs "Fjord: L2 Execution Engine, L1-Cost fee changes (FastLZ
/// estimator)" and "Fjord: Predeploys, GasPriceOracle"
/// (https://docs.base.org/base-chain/specs/upgrades/fjord/exec-engine, .../fjord/predeploys):
///   l1FeeScaled         = baseFeeScalar * l1BaseFee * 16 + blobBaseFeeScalar * blobBaseFee
///   estimatedSizeScaled = max(minTransactionSize * 1e6, intercept + fastlzCoef * fastlzSize)
///   l1Fee               = estimatedSizeScaled * l1FeeScaled / 1e12
/// fastlzSize: FastLZ level-1 compressed length of the unsigned transaction + 68 (getL1Fee), or
/// txSize + txSize / 255 + 16 with txSize = unsignedTxSize + 68 (getL1FeeUpperBound). The FastLZ length is counted
/// here, not produced; chain/l1_fee.py computes the same in Python and the tests compare them.
contract DevnetGasPriceOracle {
  int256 public constant COST_INTERCEPT = -42_585_600;
  uint256 public constant COST_FASTLZ_COEF = 836_500;
  uint256 public constant MIN_TRANSACTION_SIZE = 100;
  uint256 public constant DECIMALS = 6;

  uint256 private _l1BaseFee; // slot 0
  uint256 private _blobBaseFee; // slot 1
  uint256 private _baseFeeScalar; // slot 2
  uint256 private _blobBaseFeeScalar; // slot 3

  /// @notice Anyone may move the inputs on the devnet (the real contract reads them from the L1Block predeploy).
  function setL1FeeParams(
    uint256 l1BaseFee_,
    uint256 blobBaseFee_,
    uint32 baseFeeScalar_,
    uint32 blobBaseFeeScalar_
  ) external {
    _l1BaseFee = l1BaseFee_;
    _blobBaseFee = blobBaseFee_;
    _baseFeeScalar = baseFeeScalar_;
    _blobBaseFeeScalar = blobBaseFeeScalar_;
  }

  function isEcotone() external pure returns (bool) {
    return true;
  }

  function isFjord() external pure returns (bool) {
    return true;
  }

  function decimals() external pure returns (uint256) {
    return DECIMALS;
  }

  function l1BaseFee() external view returns (uint256) {
    return _l1BaseFee;
  }

  function blobBaseFee() external view returns (uint256) {
    return _blobBaseFee;
  }

  function baseFeeScalar() external view returns (uint32) {
    return uint32(_baseFeeScalar);
  }

  function blobBaseFeeScalar() external view returns (uint32) {
    return uint32(_blobBaseFeeScalar);
  }

  function getL1Fee(bytes calldata data) external view returns (uint256) {
    return _fjordFee(flzCompressLen(data) + 68);
  }

  function getL1FeeUpperBound(uint256 unsignedTxSize) external view returns (uint256) {
    uint256 txSize = unsignedTxSize + 68;
    return _fjordFee(txSize + txSize / 255 + 16);
  }

  function _fjordFee(uint256 fastlzSize) internal view returns (uint256) {
    int256 estimated = COST_INTERCEPT + int256(COST_FASTLZ_COEF * fastlzSize);
    int256 least = int256(MIN_TRANSACTION_SIZE * 1e6);
    if (estimated < least) {
      estimated = least;
    }
    uint256 feeScaled = _baseFeeScalar * _l1BaseFee * 16 + _blobBaseFeeScalar * _blobBaseFee;
    return (uint256(estimated) * feeScaled) / 1e12;
  }

  /// @notice The number of bytes FastLZ level 1 compresses `data` into.
  function flzCompressLen(bytes calldata data) public pure returns (uint256 size) {
    uint256 n = data.length;
    uint256[] memory table = new uint256[](8192);
    uint256 limit = n >= 13 ? n - 13 : 0;
    uint256 anchor = 0;
    uint256 ip = 2;
    while (ip < limit) {
      uint256 ref;
      while (true) {
        uint256 seq = _u24(data, ip);
        uint256 h = _slot(seq);
        ref = table[h];
        table[h] = ip;
        uint256 distance = ip - ref;
        if (ip >= limit) break;
        ip++;
        if (distance <= 0x1fff && seq == _u24(data, ref)) break;
      }
      if (ip >= limit) break;
      ip--;
      if (ip > anchor) size += _literalBytes(ip - anchor);
      uint256 length = _matchLength(data, ref + 3, ip + 3, limit + 9);
      size += _matchBytes(length);
      ip += length;
      table[_slot(_u24(data, ip))] = ip;
      ip++;
      table[_slot(_u24(data, ip))] = ip;
      ip++;
      anchor = ip;
    }
    size += _literalBytes(n - anchor);
  }

  function _u24(bytes calldata data, uint256 i) private pure returns (uint256) {
    return uint256(uint8(data[i])) | (uint256(uint8(data[i + 1])) << 8) | (uint256(uint8(data[i + 2])) << 16);
  }

  function _slot(uint256 value) private pure returns (uint256) {
    return ((value * 2654435769) >> 19) & 0x1fff;
  }

  function _literalBytes(uint256 run) private pure returns (uint256) {
    uint256 rest = run % 32;
    return (run / 32) * 33 + (rest == 0 ? 0 : rest + 1);
  }

  function _matchBytes(uint256 length) private pure returns (uint256) {
    uint256 rest = (length - 1) % 262;
    return ((length - 1) / 262) * 3 + (rest >= 6 ? 3 : 2);
  }

  /// @dev One past the first differing byte (or the bound), as the reference counts it.
  function _matchLength(bytes calldata data, uint256 p, uint256 q, uint256 end) private pure returns (uint256 length) {
    end -= q;
    while (length < end) {
      if (data[p + length] != data[q + length]) end = 0;
      length++;
    }
  }
}
