// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

/// @title DevnetAggregator
/// @notice A Chainlink-style price feed for the liq-pipeline devnet. Aave's MockAggregator has no setter and
/// emits AnswerUpdated only in its constructor; this feed emits Chainlink's AnswerUpdated on every change, so a
/// watcher that follows price events sees devnet price moves exactly as it would see a real feed's.
contract DevnetAggregator {
  /// Chainlink's AggregatorInterface event (same signature, same indexed fields).
  event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
  event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);

  uint8 public immutable decimals;
  address public immutable owner;
  string public description;
  uint256 public constant version = 4;

  uint80 internal _round;
  mapping(uint256 => int256) internal _answers;
  mapping(uint256 => uint256) internal _timestamps;

  constructor(uint8 decimals_, string memory description_, int256 initialAnswer) {
    decimals = decimals_;
    description = description_;
    owner = msg.sender;
    _update(initialAnswer);
  }

  /// @notice New answer, as a Chainlink round would publish it; only the deployer may set it.
  function setAnswer(int256 answer) external {
    require(msg.sender == owner, "DevnetAggregator: not owner");
    _update(answer);
  }

  function latestAnswer() external view returns (int256) {
    return _answers[_round];
  }

  function latestTimestamp() external view returns (uint256) {
    return _timestamps[_round];
  }

  function latestRound() external view returns (uint256) {
    return _round;
  }

  function getAnswer(uint256 roundId) external view returns (int256) {
    return _answers[roundId];
  }

  function getTimestamp(uint256 roundId) external view returns (uint256) {
    return _timestamps[roundId];
  }

  function latestRoundData()
    external
    view
    returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
  {
    return (_round, _answers[_round], _timestamps[_round], _timestamps[_round], _round);
  }

  function getRoundData(uint80 roundId)
    external
    view
    returns (uint80, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
  {
    require(roundId != 0 && roundId <= _round, "DevnetAggregator: no data present");
    return (roundId, _answers[roundId], _timestamps[roundId], _timestamps[roundId], roundId);
  }

  function _update(int256 answer) internal {
    uint80 round = _round + 1;
    _round = round;
    _answers[round] = answer;
    _timestamps[round] = block.timestamp;
    emit NewRound(round, msg.sender, block.timestamp);
    emit AnswerUpdated(answer, round, block.timestamp);
  }
}
