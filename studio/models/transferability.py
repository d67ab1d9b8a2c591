"""How well a frozen backbone's features suit a person's photos, scored without fine-tuning it.

Three scores on (features, labels), each cheap next to a training run:
- k-NN accuracy on a held-out part: published work finds it a strong, simple ranker of backbones;
- a linear probe (a logistic-regression head, the feature-extraction recipe itself) on the same part;
- LogME (You et al., ICML 2021): the log marginal evidence of a Bayesian linear model from the
  features to each class's one-hot target, maximised over its two precisions; no held-out part needed.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def knn_accuracy(train: torch.Tensor, train_y: torch.Tensor, test: torch.Tensor, test_y: torch.Tensor,
                 k: int = 10) -> float:
    """Accuracy of a cosine-similarity k-nearest-neighbour vote (each neighbour weighted by its similarity)."""
    train, test = F.normalize(train.float(), dim=1), F.normalize(test.float(), dim=1)
    k = max(1, min(k, len(train)))
    similarity, index = (test @ train.T).topk(k, dim=1)
    classes = int(max(train_y.max(), test_y.max())) + 1
    votes = torch.zeros(len(test), classes).scatter_add_(1, train_y[index], similarity.clamp_min(0) + 1e-6)
    return (votes.argmax(1) == test_y).float().mean().item()


def linear_probe_accuracy(train: torch.Tensor, train_y: torch.Tensor, test: torch.Tensor, test_y: torch.Tensor,
                          steps: int = 200, weight_decay: float = 1e-3) -> float:
    """Held-out accuracy of a softmax head trained on the standardised features (L-BFGS, full batch)."""
    mean, std = train.float().mean(0), train.float().std(0).clamp_min(1e-6)
    x, z = (train.float() - mean) / std, (test.float() - mean) / std
    classes = int(max(train_y.max(), test_y.max())) + 1
    head = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(head(x), train_y) + weight_decay * head.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return (head(z).argmax(1) == test_y).float().mean().item()


def logme(features: torch.Tensor, labels: torch.Tensor, iterations: int = 11) -> float:
    """Mean over classes of the per-photo log evidence of y = F w + noise, w ~ N(0, 1/alpha), noise ~ N(0, 1/beta).

    With F = U diag(s) V^T, the posterior mean and both precisions have closed forms in s, so each
    fixed-point update costs O(n d); higher means the features explain the labels better."""
    f = features.double()
    n, d = f.shape
    u, s, _ = torch.linalg.svd(f, full_matrices=False)
    sigma = s.square()
    classes = int(labels.max()) + 1
    total = 0.0
    for k in range(classes):
        y = (labels == k).double()
        projected = u.T @ y                       # y in the basis of F's left singular vectors
        outside = y.square().sum() - projected.square().sum()   # the part of y F cannot reach
        alpha, beta = 1.0, 1.0
        for _ in range(iterations):
            t = alpha / beta
            gamma = (sigma / (sigma + t)).sum()
            m_norm = (sigma * projected.square() / (sigma + t).square()).sum()     # |posterior mean|^2
            residual = ((t / (sigma + t)).square() * projected.square()).sum() + outside
            alpha = (gamma / m_norm.clamp_min(1e-12)).item()
            beta = ((n - gamma) / residual.clamp_min(1e-12)).item()
        t = alpha / beta
        m_norm = (sigma * projected.square() / (sigma + t).square()).sum()
        residual = ((t / (sigma + t)).square() * projected.square()).sum() + outside
        log_det = torch.log(alpha + beta * sigma).sum() + (d - len(sigma)) * math.log(alpha)
        evidence = (n / 2 * math.log(beta) + d / 2 * math.log(alpha) - n / 2 * math.log(2 * math.pi)
                    - beta / 2 * residual - alpha / 2 * m_norm - 0.5 * log_det)
        total += evidence.item() / n
    return total / classes
