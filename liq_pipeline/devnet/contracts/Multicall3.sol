// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

/// @title Multicall3 (aggregate3 only)
/// @notice The devnet's stand-in for the canonical Multicall3 deployed at 0xcA11bde05977b3631167028862bE2a173976CA11
/// on Base and most EVM chains. Same selector and ABI for aggregate3, so the reader that batches many views into
/// one eth_call runs unchanged against the devnet and a real node. The devnet installs its runtime code at the
/// canonical address; read-only use (eth_call) is all the pipeline needs.
contract Multicall3 {
  struct Call3 {
    address target;
    bool allowFailure;
    bytes callData;
  }

  struct Result {
    bool success;
    bytes returnData;
  }

  /// @notice Call every target in order; a failed call reverts the whole batch unless it allows failure.
  function aggregate3(Call3[] calldata calls) public payable returns (Result[] memory returnData) {
    uint256 length = calls.length;
    returnData = new Result[](length);
    for (uint256 i = 0; i < length; ++i) {
      Call3 calldata call = calls[i];
      (bool success, bytes memory data) = call.target.call(call.callData);
      require(success || call.allowFailure, "Multicall3: call failed");
      returnData[i] = Result(success, data);
    }
  }
}
