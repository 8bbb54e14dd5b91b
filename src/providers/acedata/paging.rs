//! Reading every page of a limit/offset list: one request per page until `count` items
//! have been read (or a page comes back empty). A page that fails fails the read.

use std::future::Future;

use crate::collector::CollectError;

/// `limit` of each page request.
pub const PAGE_SIZE: u64 = 100;

/// Every item of a list, `page(limit, offset)` fetching one page as `(count, items)`.
pub async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, CollectError>
where
    F: FnMut(u64, u64) -> Fut,
    Fut: Future<Output = Result<(u64, Vec<T>), CollectError>>,
{
    let mut items = Vec::new();
    let mut offset = 0u64;
    loop {
        let (count, got) = page(PAGE_SIZE, offset).await?;
        let read = got.len() as u64;
        items.extend(got);
        offset += read;
        if read == 0 || offset >= count {
            return Ok(items);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_until_count_or_an_empty_page() {
        let mut calls = Vec::new();
        let items = all_pages(|limit, offset| {
            calls.push(offset);
            let n = 250u64;
            let page: Vec<u64> = (offset..n.min(offset + limit)).collect();
            async move { Ok((n, page)) }
        })
        .await
        .unwrap();
        assert_eq!(items, (0..250).collect::<Vec<_>>());
        assert_eq!(calls, [0, 100, 200]);

        // A count that overstates the list ends at the first empty page.
        let mut pages = 0;
        let items: Vec<u64> = all_pages(|_, offset| {
            pages += 1;
            let page = if offset == 0 { vec![1, 2] } else { vec![] };
            async move { Ok((10, page)) }
        })
        .await
        .unwrap();
        assert_eq!((items, pages), (vec![1, 2], 2));
    }
}
