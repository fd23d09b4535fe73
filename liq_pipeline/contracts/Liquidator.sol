// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Liquidator: one Aave V3 liquidation per call, flash-loaned or from inventory, profitable or reverted.
/// @notice Flash-loan mode: Pool.flashLoanSimple of the debt asset; in executeOperation the liquidationCall (the
/// standard one, or the L2Pool's compact `liquidationCall(bytes32,bytes32)` when args are given), then all the
/// seized collateral sold on a Uniswap V2 pair (tokens in, then the pair's own `swap`), then the Pool pulls the
/// loan plus its premium. Inventory mode: the contract's own tokens repay, the collateral (or its aTokens) stays
/// here unless a pair is given. Either way the call reverts unless the profit, in units of the debt asset, is at
/// least `minProfit`: a liquidation that lost the race costs gas, never capital.
/// Profit: flash-loan mode and inventory mode with a swap, the change of this contract's debt-asset balance over
/// the call; inventory mode without a swap, the collateral received valued at the Pool's oracle in debt-asset
/// units (floored) minus the debt repaid.
/// Only the operator (set at construction) may call; executeOperation only from the Pool, for a flash loan this
/// contract started. Profits stay here until the operator withdraws them.

interface IERC20Like {
    function balanceOf(address owner) external view returns (uint256);
    function decimals() external view returns (uint8);
}

interface IAavePool {
    function flashLoanSimple(address receiver, address asset, uint256 amount, bytes calldata params, uint16 referral)
        external;
    function liquidationCall(address collateral, address debt, address user, uint256 debtToCover, bool receiveAToken)
        external;
    function liquidationCall(bytes32 args1, bytes32 args2) external;
    function ADDRESSES_PROVIDER() external view returns (address);
}

interface IAddressesProvider {
    function getPriceOracle() external view returns (address);
}

interface IPriceOracle {
    function getAssetPrice(address asset) external view returns (uint256);
}

interface IUniswapV2PairLike {
    function token0() external view returns (address);
    function getReserves() external view returns (uint112 reserve0, uint112 reserve1, uint32 timestamp);
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external;
}

contract Liquidator {
    /// What to liquidate and how to sell the collateral.
    struct Order {
        address collateral; // the collateral reserve's underlying
        address debt; // the debt reserve's underlying (the flash-loaned asset)
        address user;
        uint256 debtToCover; // as liquidationCall takes it (type(uint256).max: as much as allowed)
        bool receiveAToken; // inventory mode only (a flash loan must be repaid in the underlying)
        bytes32 args1; // non-zero: the L2Pool's compact liquidationCall(args1, args2) instead of the standard one
        bytes32 args2;
        address pair; // Uniswap V2 pair of (collateral, debt); zero: no swap
        uint256 amountOut; // the swap's output; zero: computed here from getReserves (997/1000, floored)
        int256 minProfit; // in debt-asset units
    }

    struct Outcome {
        uint256 debtRepaid;
        uint256 collateralReceived;
        uint256 swapOut;
        uint256 premium; // the flash loan's
    }

    address public immutable operator;
    IAavePool public immutable pool;

    event Liquidated(
        address indexed user,
        address indexed collateral,
        address indexed debt,
        uint256 debtRepaid,
        uint256 collateralReceived,
        uint256 swapOut,
        uint256 flashAmount,
        uint256 premium,
        int256 profit
    );

    error NotOperator();
    error NotPool();
    error NotInitiator();
    error ProfitTooLow(int256 profit, int256 minProfit);
    error TokenCallFailed(address token);
    error FlashLoanNeedsUnderlying();

    // Transient storage (EIP-1153), alive for one transaction: the flag set around this contract's own flash
    // loan, and what executeOperation reports back to liquidateWithFlashLoan (no storage writes: ~0.1M gas less).
    uint256 private constant T_IN_FLASH = 0;
    uint256 private constant T_DEBT_REPAID = 1;
    uint256 private constant T_COLLATERAL_RECEIVED = 2;
    uint256 private constant T_SWAP_OUT = 3;
    uint256 private constant T_PREMIUM = 4;

    constructor(address pool_, address operator_) {
        pool = IAavePool(pool_);
        operator = operator_;
    }

    modifier onlyOperator() {
        if (msg.sender != operator) revert NotOperator();
        _;
    }

    // --- flash-loan mode ------------------------------------------------------------------------------------

    /// Flash-loan `flashAmount` of the debt asset, liquidate, sell the collateral, repay. Returns the profit.
    function liquidateWithFlashLoan(Order calldata order, uint256 flashAmount)
        external
        onlyOperator
        returns (int256 profit)
    {
        if (order.receiveAToken) revert FlashLoanNeedsUnderlying();
        uint256 before = IERC20Like(order.debt).balanceOf(address(this));
        _tstore(T_IN_FLASH, 1);
        pool.flashLoanSimple(address(this), order.debt, flashAmount, abi.encode(order), 0);
        _tstore(T_IN_FLASH, 0);
        Outcome memory outcome = Outcome({
            debtRepaid: _tload(T_DEBT_REPAID),
            collateralReceived: _tload(T_COLLATERAL_RECEIVED),
            swapOut: _tload(T_SWAP_OUT),
            premium: _tload(T_PREMIUM)
        });
        profit = int256(IERC20Like(order.debt).balanceOf(address(this))) - int256(before);
        _settle(order, outcome, flashAmount, profit);
    }

    /// IFlashLoanSimpleReceiver: the Pool lent `amount` of `asset`; it pulls amount + premium after this returns.
    function executeOperation(address asset, uint256 amount, uint256 premium, address initiator, bytes calldata params)
        external
        returns (bool)
    {
        if (msg.sender != address(pool)) revert NotPool();
        if (initiator != address(this) || _tload(T_IN_FLASH) != 1) revert NotInitiator();
        Order memory order = abi.decode(params, (Order));
        _approve(asset, address(pool), amount);
        Outcome memory outcome = _liquidateAndSwap(order);
        _tstore(T_DEBT_REPAID, outcome.debtRepaid);
        _tstore(T_COLLATERAL_RECEIVED, outcome.collateralReceived);
        _tstore(T_SWAP_OUT, outcome.swapOut);
        _tstore(T_PREMIUM, premium);
        _approve(asset, address(pool), amount + premium);
        return true;
    }

    // --- inventory mode -------------------------------------------------------------------------------------

    /// Liquidate with the debt-asset tokens this contract holds. Returns the profit (see the contract's notes).
    function liquidateFromInventory(Order calldata order) external onlyOperator returns (int256 profit) {
        uint256 before = IERC20Like(order.debt).balanceOf(address(this));
        _approve(order.debt, address(pool), before);
        Outcome memory outcome = _liquidateAndSwap(order);
        _approve(order.debt, address(pool), 0);
        if (order.pair != address(0) && !order.receiveAToken) {
            profit = int256(IERC20Like(order.debt).balanceOf(address(this))) - int256(before);
        } else {
            profit = int256(_valueInDebt(order.collateral, order.debt, outcome.collateralReceived))
                - int256(outcome.debtRepaid);
        }
        _settle(order, outcome, 0, profit); // no flash loan: its amount and premium are 0
    }

    /// Send `amount` of `token` (type(uint256).max: all of it) to the operator.
    function withdraw(address token, uint256 amount) external onlyOperator {
        if (amount == type(uint256).max) amount = IERC20Like(token).balanceOf(address(this));
        _call(token, abi.encodeWithSelector(0xa9059cbb, operator, amount)); // transfer(address,uint256)
    }

    // --- internals ------------------------------------------------------------------------------------------

    /// Both modes' end: the profit checked against the order's minimum (ProfitTooLow), then the Liquidated event.
    function _settle(Order calldata order, Outcome memory outcome, uint256 flashAmount, int256 profit) private {
        if (profit < order.minProfit) revert ProfitTooLow(profit, order.minProfit);
        emit Liquidated(
            order.user,
            order.collateral,
            order.debt,
            outcome.debtRepaid,
            outcome.collateralReceived,
            outcome.swapOut,
            flashAmount,
            outcome.premium,
            profit
        );
    }

    function _liquidateAndSwap(Order memory order) private returns (Outcome memory outcome) {
        address received = order.receiveAToken ? _aToken(order.collateral) : order.collateral;
        uint256 debtBefore = IERC20Like(order.debt).balanceOf(address(this));
        uint256 collateralBefore = IERC20Like(received).balanceOf(address(this));
        if (order.args1 != bytes32(0)) {
            pool.liquidationCall(order.args1, order.args2);
        } else {
            pool.liquidationCall(order.collateral, order.debt, order.user, order.debtToCover, order.receiveAToken);
        }
        uint256 collateralAfter = IERC20Like(received).balanceOf(address(this));
        uint256 debtAfter = IERC20Like(order.debt).balanceOf(address(this));
        if (received == order.debt) {
            // one token both ways: only the net change is known (reported as received, or as repaid if negative)
            outcome.collateralReceived = debtAfter > debtBefore ? debtAfter - debtBefore : 0;
            outcome.debtRepaid = debtAfter < debtBefore ? debtBefore - debtAfter : 0;
            return outcome; // nothing to swap
        }
        outcome.collateralReceived = collateralAfter - collateralBefore;
        outcome.debtRepaid = debtBefore - debtAfter;
        if (order.pair != address(0) && !order.receiveAToken && outcome.collateralReceived > 0) {
            outcome.swapOut = _swap(order, outcome.collateralReceived);
        }
    }

    function _swap(Order memory order, uint256 amountIn) private returns (uint256 amountOut) {
        IUniswapV2PairLike pair = IUniswapV2PairLike(order.pair);
        bool zeroForOne = pair.token0() == order.collateral;
        amountOut = order.amountOut;
        if (amountOut == 0) {
            (uint256 reserve0, uint256 reserve1,) = pair.getReserves();
            (uint256 reserveIn, uint256 reserveOut) = zeroForOne ? (reserve0, reserve1) : (reserve1, reserve0);
            uint256 withFee = amountIn * 997;
            amountOut = (withFee * reserveOut) / (reserveIn * 1000 + withFee);
        }
        _call(order.collateral, abi.encodeWithSelector(0xa9059cbb, address(pair), amountIn)); // transfer
        (uint256 out0, uint256 out1) = zeroForOne ? (uint256(0), amountOut) : (amountOut, uint256(0));
        pair.swap(out0, out1, address(this), new bytes(0));
    }

    /// `amount` of `collateral` at the Pool's oracle, in units of `debt` (floored).
    function _valueInDebt(address collateral, address debt, uint256 amount) private view returns (uint256) {
        if (collateral == debt) return amount;
        IPriceOracle oracle = IPriceOracle(IAddressesProvider(pool.ADDRESSES_PROVIDER()).getPriceOracle());
        uint256 collateralPrice = oracle.getAssetPrice(collateral);
        uint256 debtPrice = oracle.getAssetPrice(debt);
        uint256 collateralUnit = 10 ** IERC20Like(collateral).decimals();
        uint256 debtUnit = 10 ** IERC20Like(debt).decimals();
        return (amount * collateralPrice * debtUnit) / (debtPrice * collateralUnit);
    }

    /// The aToken of a reserve: word 8 of getReserveData (aTokenAddress, in V3.0's ReserveData and in the later
    /// versions' ReserveDataLegacy alike).
    function _aToken(address asset) private view returns (address token) {
        (bool ok, bytes memory answer) =
            address(pool).staticcall(abi.encodeWithSignature("getReserveData(address)", asset));
        if (!ok || answer.length < 9 * 32) revert TokenCallFailed(address(pool));
        assembly {
            token := mload(add(answer, 288)) // 32 (length) + 8 * 32
        }
    }

    function _tstore(uint256 slot, uint256 value) private {
        assembly {
            tstore(slot, value)
        }
    }

    function _tload(uint256 slot) private view returns (uint256 value) {
        assembly {
            value := tload(slot)
        }
    }

    function _approve(address token, address spender, uint256 amount) private {
        _call(token, abi.encodeWithSelector(0x095ea7b3, spender, amount)); // approve(address,uint256)
    }

    /// A token call that must succeed and return true or nothing (tokens without a return value).
    function _call(address token, bytes memory data) private {
        (bool ok, bytes memory answer) = token.call(data);
        if (!ok || (answer.length != 0 && !abi.decode(answer, (bool)))) revert TokenCallFailed(token);
    }
}
