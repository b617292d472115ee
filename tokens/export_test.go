package tokens

// CacheLen is the number of tokens in the verified cache.
func (s *Service) CacheLen() int { return s.cache.len() }
