"""Parameters of HeteroSSHELR / HeteroSSHELinR: FATE 1.x's names and defaults, FATE 2.x's
spellings (``epochs``, ``reveal_every_epoch``, ``threshold``) as aliases, and FATE's own
consistency rules checked when the conf is validated."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from components.crypto.params import EncryptParam
from components.linear.params import LinearParams, OptimizerName

#: Paillier modulus bits the 128-bit shares' cross products need (2·128 + row bits + 40 + slack)
MIN_SSHE_KEY = 512
#: FATE 2.x spelling -> FATE 1.x name
ALIASES = {"epochs": "max_iter", "reveal_every_epoch": "reveal_every_iter"}


class HeteroSSHELRParams(LinearParams):
    inert: ClassVar[frozenset[str]] = LinearParams.inert | {"use_mix_rand", "random_field",
                                                            "encrypted_mode_calculator_param"}
    penalty: Literal["L1", "l1", "L2", "l2", "none", "None", "NONE"] | None = "L2"
    optimizer: OptimizerName = "sgd"
    encrypt_param: EncryptParam = EncryptParam()
    #: "encrypted_reveal_in_host": each host keeps its weights encrypted under the guest's key
    reveal_strategy: Literal["respectively", "encrypted_reveal_in_host"] = "respectively"
    #: who makes the products' cross terms (and any Beaver triples): Paillier (default) or oblivious transfer
    triple_provider: Literal["paillier", "ot"] = "paillier"
    reveal_every_iter: bool = True
    compute_loss: bool = True
    #: FATE 2.x: reveal the loss to the guest every this many epochs
    reveal_loss_freq: int = Field(1, ge=1)
    use_mix_rand: bool = True
    random_field: int = 2 ** 16
    encrypted_mode_calculator_param: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        """FATE 2.x names for FATE 1.x fields (both at once is a conflict)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for new, old in ALIASES.items():
            if new in data:
                if old in data:
                    raise PydanticCustomError("alias", "{new} and {old} are the same setting; give one",
                                              {"new": new, "old": old})
                data[old] = data.pop(new)
        if "threshold" in data:  # FATE 2.x: the predict threshold
            data["predict_param"] = {**(data.get("predict_param") or {}), "threshold": data.pop("threshold")}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> HeteroSSHELRParams:
        if self.reveal_strategy == "encrypted_reveal_in_host" and self.reveal_every_iter:
            raise PydanticCustomError("reveal_strategy", "reveal_strategy 'encrypted_reveal_in_host' needs "
                                      "reveal_every_iter false (the hosts never see their weights in the clear)")
        if not self.reveal_every_iter:
            if self.penalty_name not in ("L2", "NONE"):
                raise PydanticCustomError("penalty", "penalty must be 'L2' or none when reveal_every_iter is "
                                          "false (the update runs on secret shares)")
            if self.optimizer != "sgd":
                raise PydanticCustomError("optimizer", "optimizer must be 'sgd' when reveal_every_iter is false "
                                          "(the update runs on secret shares), got '{o}'", {"o": self.optimizer})
            if self.validation_freqs or (self.callback_param or {}).get("validation_freqs"):
                raise PydanticCustomError("validation", "validation every iteration needs reveal_every_iter true")
        elif self.optimizer == "nesterov_momentum_sgd":
            raise PydanticCustomError("not_supported", "not supported: optimizer 'nesterov_momentum_sgd' with "
                                      "HeteroSSHELR (sgd, rmsprop, adam or adagrad)")
        if self.early_stop in ("diff", "abs") and not self.compute_loss:
            raise PydanticCustomError("early_stop", "early_stop '{e}' needs the loss: set compute_loss true or "
                                      "early_stop 'weight_diff'", {"e": self.early_stop})
        if self.encrypt_param.key_length < MIN_SSHE_KEY:
            raise PydanticCustomError("key_length", "encrypt_param.key_length must be at least {m} for "
                                      "HeteroSSHELR (its products multiply 128-bit shares under Paillier), got {k}",
                                      {"m": MIN_SSHE_KEY, "k": self.encrypt_param.key_length})
        return self

    @property
    def penalty_name(self) -> str:
        return "NONE" if self.penalty is None else self.penalty.upper()


class HeteroSSHELinRParams(HeteroSSHELRParams):
    """FATE's HeteroSSHELinR defaults: 20 iterations, weights kept shared until the end."""

    max_iter: int = Field(20, ge=1)
    reveal_every_iter: bool = False
