//! `isuser` and the shared roster, asked as the service account.

use super::*;

impl Nextcloud {
    /// A request as the service account, unless its credentials were
    /// refused lately ([`Service::credentials`]); `answer` reads the reply,
    /// and a refusal it finds starts the back-off.
    pub(super) async fn service_call<T>(
        &self,
        svc: &Service,
        url: &reqwest::Url,
        answer: impl FnOnce(&HttpReply) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let account = svc.credentials()?;
        self.read_capabilities_if_due().await;
        let request = self.ocs_request(url, account.authorization.clone())?;
        let reply = self
            .send_counted(account.user(), None, request, url)
            .await?;
        let result = answer(&reply);
        if let Err(e) = &result {
            svc.note(e);
        }
        result
    }

    /// A request as `account`, for the doctor (which checks the back-off itself).
    pub(super) async fn service_get(
        &self,
        account: &ServiceAccount,
        url: &reqwest::Url,
    ) -> Result<HttpReply, BackendError> {
        self.read_capabilities_if_due().await;
        let request = self.ocs_request(url, account.authorization.clone())?;
        self.send_counted(account.user(), None, request, url).await
    }

    pub(super) async fn is_user_op(
        &self,
        svc: &Service,
        who: Account<'_>,
    ) -> Result<bool, BackendError> {
        // Nextcloud refuses such user ids; a URL could not name them anyway.
        let Some(url) = ocs_url(&self.base, &["cloud", "users", who.user]) else {
            return Ok(false);
        };
        let answer = self
            .service_call(svc, &url, |r| is_user_answer(r, &url, who.user, &svc.user))
            .await;
        self.with_scope(svc, answer).await
    }

    /// A [`BackendError::NotVisible`] with what the service account covers.
    pub(super) async fn with_scope<T>(
        &self,
        svc: &Service,
        answer: Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        match answer {
            Err(BackendError::NotVisible {
                user, service_user, ..
            }) => Err(BackendError::NotVisible {
                user,
                service_user,
                scope: self.service_scope(svc).await,
            }),
            other => other,
        }
    }

    /// "; svc is subadmin of staff, chess" (or an admin), from the service
    /// account's own record, asked once; empty when that fails.
    pub(super) async fn service_scope(&self, svc: &Service) -> String {
        let known = self
            .service_scope
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(s) = known {
            return s;
        }
        let Some(url) = ocs_url(&self.base, &["cloud", "users", &svc.user]) else {
            return String::new();
        };
        let record = self
            .service_call(svc, &url, |r| match r.status {
                200 if shared_trouble(r, &url).is_none() => Ok(ocs_data(&r.body)?),
                _ => Err(Self::service_trouble(r, &url, svc)),
            })
            .await;
        let Ok(data) = record else {
            return String::new();
        };
        let strings = |k: &str| string_list(&data, k);
        let scope = if strings("groups").iter().any(|g| g == "admin") {
            format!("; {} is an admin, so the user is unknown", svc.user)
        } else {
            match strings("subadmin") {
                s if s.is_empty() => format!("; {} is subadmin of no group", svc.user),
                s => format!("; {} is subadmin of {}", svc.user, s.join(", ")),
            }
        };
        *self.service_scope.lock().unwrap_or_else(|p| p.into_inner()) = Some(scope.clone());
        scope
    }

    /// Reads a service-account reply that has no answer of its own to give
    /// for 401, 403, 404: the trouble it is.
    pub(super) fn service_trouble(
        reply: &HttpReply,
        url: &reqwest::Url,
        svc: &Service,
    ) -> BackendError {
        if let Some(e) = shared_trouble(reply, url) {
            return e;
        }
        match reply.status {
            401 | 403 => service_refused(reply, &svc.user),
            _ => reply.unexpected(),
        }
    }

    /// The user's groups with their display names: `users/{id}/groups/details`
    /// (Nextcloud 32 on), else `users/{id}/groups` with the ids as names.
    pub(super) async fn user_groups(
        &self,
        svc: &Service,
        user: &str,
    ) -> Result<Vec<Group>, BackendError> {
        let url_of = |last: &[&str]| {
            let mut segs = vec!["cloud", "users", user, "groups"];
            segs.extend_from_slice(last);
            ocs_url(&self.base, &segs).ok_or_else(|| {
                BackendError::Api(format!(
                    "user id {:?} cannot be put in a Nextcloud URL",
                    printable_snippet(user.as_bytes(), 80)
                ))
            })
        };
        // 404 of an unknown or invisible user, or of a missing endpoint:
        // the plain list then tells which.
        if !self.no_group_details.load(Ordering::Relaxed) {
            let url = url_of(&["details"])?;
            let details = self
                .service_call(svc, &url, |r| match r.status {
                    200 if shared_trouble(r, &url).is_none() => {
                        Ok(Some(decode_user_group_details(&r.body)?))
                    }
                    404 | 403 if shared_trouble(r, &url).is_none() => Ok(None),
                    _ => Err(Self::service_trouble(r, &url, svc)),
                })
                .await?;
            if let Some(groups) = details {
                return Ok(groups);
            }
        }
        let url = url_of(&[])?;
        let groups = self
            .service_call(svc, &url, |r| match r.status {
                200 if shared_trouble(r, &url).is_none() => Ok(decode_user_groups(&r.body)?),
                // Trouble, not an empty roster: an empty one would remove
                // the user from every provisioned group.
                404 if shared_trouble(r, &url).is_none() => Err(match ocs_statuscode(&r.body) {
                    Some(998) => not_visible(user, &svc.user),
                    _ => BackendError::Api(format!(
                        "Nextcloud does not know user {:?} (HTTP 404 for its groups)",
                        printable_snippet(user.as_bytes(), 80)
                    )),
                }),
                _ => Err(Self::service_trouble(r, &url, svc)),
            })
            .await?;
        if !self.no_group_details.swap(true, Ordering::Relaxed) {
            debug!("Nextcloud has no users/{{id}}/groups/details (before 32): shared roster groups are named by their ids");
        }
        Ok(groups
            .into_iter()
            .map(|id| Group {
                name: id.clone(),
                id,
            })
            .collect())
    }

    /// Every member of `group`, [`MEMBERS_PAGE`] per request, until a page
    /// is short or empty (`[]` past the end) or brings nobody new (a
    /// Nextcloud that ignores `offset`).
    pub(super) async fn group_members(
        &self,
        svc: &Service,
        group: &str,
    ) -> Result<Vec<Member>, BackendError> {
        let mut all: Vec<Member> = Vec::new();
        let mut seen = HashSet::new();
        loop {
            let Some(mut url) =
                ocs_url(&self.base, &["cloud", "groups", group, "users", "details"])
            else {
                return Err(BackendError::Api(format!(
                    "group {:?} cannot be put in a Nextcloud URL",
                    printable_snippet(group.as_bytes(), 80)
                )));
            };
            url.query_pairs_mut()
                .append_pair("limit", &MEMBERS_PAGE.to_string())
                .append_pair("offset", &all.len().to_string());
            let page = self
                .service_call(svc, &url, |r| match r.status {
                    200 if shared_trouble(r, &url).is_none() => Ok(decode_group_members(&r.body)?),
                    _ => Err(Self::service_trouble(r, &url, svc)),
                })
                .await?;
            let short = page.len() < MEMBERS_PAGE;
            let before = all.len();
            all.extend(page.into_iter().filter(|m| seen.insert(m.uid.clone())));
            if short || all.len() == before {
                return Ok(all);
            }
            if all.len() > MAX_GROUP_MEMBERS {
                return Err(BackendError::Api(format!(
                    "group {:?} has more than {MAX_GROUP_MEMBERS} members; not a shared roster",
                    printable_snippet(group.as_bytes(), 80)
                )));
            }
        }
    }

    pub(super) async fn roster_op(
        &self,
        svc: &Service,
        who: Account<'_>,
    ) -> Result<SharedRoster, BackendError> {
        let groups = self.user_groups(svc, who.user).await;
        let groups = self.with_scope(svc, groups).await?;
        let mut seen = BTreeSet::new();
        let mut members = Vec::with_capacity(groups.len());
        // One group after another: a login must not become a burst of
        // requests on Nextcloud.
        for group in groups {
            if !seen.insert(group.id.clone()) {
                continue;
            }
            let list = self.group_members(svc, &group.id).await?;
            members.push((group.name, list));
        }
        Ok(build_shared_roster(&members))
    }
}
